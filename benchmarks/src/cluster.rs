//! [`TestCluster`]: a coordinator and N workers in this process, each on its own loopback
//! port and data directory, as `shardfusion local` runs them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::prelude::SessionConfig;
use shardfusion_common::auth::ClusterSecret;
use shardfusion_executor::{WorkerConfig, registration};
use shardfusion_scheduler::Coordinator;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::TestClient;

/// Each worker runs on its own runtime so that killing it drops its open connections too,
/// as a crash would.
struct Worker {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Worker {
    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A running in-process cluster. Dropping it stops every server.
pub struct TestCluster {
    pub url: String,
    pub coordinator: Coordinator,
    pub data_dir: PathBuf,
    stop: watch::Sender<bool>,
    coordinator_task: JoinHandle<()>,
    workers: Vec<Worker>,
    _temp: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// A cluster with `workers` workers in a temporary directory.
    pub async fn start(workers: usize) -> Self {
        Self::start_with_config(workers, SessionConfig::new()).await
    }

    /// [`Self::start`] with the DataFusion options the coordinator plans with.
    pub async fn start_with_config(workers: usize, config: SessionConfig) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut cluster = Self::start_in_with_config(&dir, workers, config).await;
        cluster._temp = Some(temp);
        cluster
    }

    /// A cluster keeping its state in `dir` (workers in `dir/worker-i`), so a second
    /// cluster started on the same `dir` finds the same catalog and shards.
    pub async fn start_in(dir: &Path, workers: usize) -> Self {
        Self::start_in_with_config(dir, workers, SessionConfig::new()).await
    }

    async fn start_in_with_config(dir: &Path, workers: usize, config: SessionConfig) -> Self {
        let secret = ClusterSecret::new("test-cluster-secret");
        let (stop, stopped) = watch::channel(false);
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let coordinator = shardfusion_scheduler::server::open_with(
            &dir.join("coordinator"),
            secret.clone(),
            config,
        )
        .expect("open coordinator");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("grpc://{}", listener.local_addr().expect("addr"));
        let coordinator_task = tokio::spawn({
            let coordinator = coordinator.clone();
            let done = until(stopped.clone());
            async move {
                let _ = shardfusion_scheduler::server::serve(listener, coordinator, done).await;
            }
        });
        let mut handles = Vec::new();
        for i in 1..=workers {
            let worker_dir = dir.join(format!("worker-{i}"));
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("worker runtime");
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            std_listener.set_nonblocking(true).expect("nonblocking");
            let port = std_listener.local_addr().expect("addr").port();
            let uuid = registration::worker_uuid(&worker_dir).expect("worker id");
            let config = WorkerConfig {
                data_dir: worker_dir,
                secret: secret.clone(),
            };
            let done = until(stopped.clone());
            runtime.spawn(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                let _ = shardfusion_executor::serve(listener, config, done).await;
            });
            coordinator
                .register_worker("127.0.0.1", port, &uuid)
                .expect("register worker");
            handles.push(Worker {
                runtime: Some(runtime),
            });
        }
        Self {
            url,
            coordinator,
            data_dir: dir.to_path_buf(),
            stop,
            coordinator_task,
            workers: handles,
            _temp: None,
        }
    }

    pub async fn client(&self) -> TestClient {
        TestClient::connect(&self.url).await
    }

    /// Kills worker `index` (0-based) abruptly: its server and open streams are dropped.
    pub fn kill_worker(&mut self, index: usize) {
        if let Some(worker) = self.workers.get_mut(index) {
            worker.kill();
        }
    }

    /// Stops every server and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.coordinator_task).await;
        for mut worker in self.workers.drain(..) {
            worker.kill();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.coordinator_task.abort();
        for worker in &mut self.workers {
            worker.kill();
        }
    }
}
