//! [`TestCluster`]: an in-process [`LocalCluster`] with a fixed cluster secret and a client
//! helper, for tests and benchmarks.

use std::path::Path;

use datafusion::prelude::SessionConfig;
use shardfusion_common::auth::ClusterSecret;
use shardfusion_embedded::{LocalCluster, LocalClusterOptions};

use crate::client::TestClient;

/// A running in-process cluster. Dropping it stops every server.
pub struct TestCluster {
    pub url: String,
    cluster: LocalCluster,
}

impl TestCluster {
    /// A cluster with `workers` workers in a temporary directory.
    pub async fn start(workers: usize) -> Self {
        Self::start_with_config(workers, SessionConfig::new()).await
    }

    /// [`Self::start`] with the DataFusion options the coordinator plans with.
    pub async fn start_with_config(workers: usize, config: SessionConfig) -> Self {
        let mut options = Self::options(workers);
        options.config = config;
        Self::launch(options).await
    }

    /// [`Self::start`] with tasks handed to the workers' services in process (no sockets on
    /// the data path; see `InProcessTransport`).
    pub async fn start_in_process(workers: usize) -> Self {
        let mut options = Self::options(workers);
        options.in_process_transport = true;
        Self::launch(options).await
    }

    /// [`Self::start`] collecting orphaned files as `orphan_cleanup` says.
    pub async fn start_with_orphan_cleanup(
        workers: usize,
        orphan_cleanup: shardfusion_scheduler::cluster::orphan_cleanup::OrphanCleanupConfig,
    ) -> Self {
        let mut options = Self::options(workers);
        options.orphan_cleanup = orphan_cleanup;
        Self::launch(options).await
    }

    /// A cluster keeping its state in `dir` (workers in `dir/worker-i`), so a second
    /// cluster started on the same `dir` finds the same catalog and shards.
    pub async fn start_in(dir: &Path, workers: usize) -> Self {
        let mut options = Self::options(workers);
        options.data_dir = Some(dir.to_path_buf());
        Self::launch(options).await
    }

    /// A cluster whose options `configure` adjusts first (users, limits, ...).
    pub async fn start_with(
        workers: usize,
        configure: impl FnOnce(&mut LocalClusterOptions),
    ) -> Self {
        let mut options = Self::options(workers);
        configure(&mut options);
        Self::launch(options).await
    }

    fn options(workers: usize) -> LocalClusterOptions {
        let mut options = LocalClusterOptions::new(workers);
        options.secret = ClusterSecret::new("test-cluster-secret");
        // Files stay as statements wrote them unless a test compacts them (through
        // `coordinator().cluster().compaction` or `shardfusion_compact_table`).
        options.compaction.interval = std::time::Duration::ZERO;
        options
    }

    async fn launch(options: LocalClusterOptions) -> Self {
        let cluster = LocalCluster::start(options)
            .await
            .unwrap_or_else(|e| panic!("cannot start the test cluster: {e}"));
        Self {
            url: cluster.url().to_string(),
            cluster,
        }
    }

    pub fn coordinator(&self) -> &shardfusion_scheduler::Coordinator {
        self.cluster.coordinator()
    }

    /// How many query fragments the workers are streaming now.
    pub fn running_fragments(&self) -> usize {
        self.cluster.running_fragments()
    }

    pub fn data_dir(&self) -> &Path {
        self.cluster.data_dir()
    }

    pub async fn client(&self) -> TestClient {
        TestClient::connect(&self.url).await
    }

    /// Kills worker `index` (0-based) abruptly: its server and open streams are dropped.
    pub fn kill_worker(&mut self, index: usize) {
        self.cluster.kill_worker(index);
    }

    /// Starts worker `index` (0-based) again over its data directory, as a restarted process
    /// would (on a new port); it registers with the coordinator again.
    pub async fn restart_worker(&mut self, index: usize) {
        self.cluster
            .restart_worker(index)
            .await
            .unwrap_or_else(|e| panic!("cannot restart worker {index}: {e}"));
    }

    /// Stops every server and waits for them.
    pub async fn shutdown(self) {
        self.cluster.shutdown().await;
    }
}
