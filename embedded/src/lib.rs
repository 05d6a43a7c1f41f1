//! [`LocalCluster`]: a coordinator and N workers in this process, as `shardfusion local`,
//! the Python `shardfusion.LocalCluster` and the test harness run them.
//!
//! Each worker has its own data directory (`DIR/worker-i`), its own loopback Flight endpoint
//! and its own Tokio runtime, so that stopping one drops its connections as a crash would.
//! The coordinator keeps its state in `DIR/coordinator` and serves Flight SQL on the runtime
//! that starts the cluster. Without a data directory, a temporary one is used and removed when
//! the cluster is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::prelude::SessionConfig;
use shardfusion_common::auth::ClusterSecret;
use shardfusion_common::object_storage::StorageUrl;
use shardfusion_common::tls::{ClusterTls, TlsIdentity};
use std::sync::Arc;

use shardfusion_common::exchange::transport::Transport;
use shardfusion_common::storage::DataRoot;
use shardfusion_executor::in_process_transport::InProcessTransport;
use shardfusion_executor::{WorkerService, registration};
use shardfusion_scheduler::Coordinator;
use shardfusion_scheduler::cluster::compaction::CompactionConfig;
use shardfusion_scheduler::cluster::orphan_cleanup::OrphanCleanupConfig;
use shardfusion_scheduler::limits::server_limits::ServerLimits;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a local cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error("a local cluster needs at least one worker")]
    NoWorkers,
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    /// The coordinator would refuse to serve on the address asked for.
    #[error("{reason}")]
    ListenRefused { reason: String },
    #[error("cannot start worker {index}: {reason}")]
    Worker { index: usize, reason: String },
    #[error("cannot open the coordinator: {0}")]
    Coordinator(String),
}

/// Why a running cluster's coordinator stopped serving on its own.
#[derive(Debug, thiserror::Error)]
#[error("the coordinator stopped serving: {reason}")]
pub struct CoordinatorStopped {
    pub reason: String,
}

/// How to start a [`LocalCluster`].
#[derive(Debug, Clone)]
pub struct LocalClusterOptions {
    pub workers: usize,
    /// Where state lives; `None` means a temporary directory.
    pub data_dir: Option<PathBuf>,
    /// Keep every node's shard files in this shared object storage instead of under
    /// `data_dir` (`--storage`).
    pub storage: Option<StorageUrl>,
    /// The coordinator's Flight SQL address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Threads of each worker's runtime.
    pub worker_threads: usize,
    /// DataFusion options the coordinator plans with.
    pub config: SessionConfig,
    pub secret: ClusterSecret,
    /// Directories server-side `COPY` may read and write. By default the whole file system:
    /// an embedded cluster runs as its user, for that user, so it may reach what the user can.
    pub allow_file_access: Vec<PathBuf>,
    /// When garbage and orphaned shard files are collected (grace period, intervals).
    pub orphan_cleanup: OrphanCleanupConfig,
    /// When and what background compaction merges.
    pub compaction: CompactionConfig,
    /// The initial superuser's name (`--user`).
    pub user: String,
    /// The initial superuser's password (`--password`): with one, every client logs in.
    pub password: Option<String>,
    /// How long a login's bearer token is valid.
    pub token_ttl: std::time::Duration,
    /// Serve clients beyond loopback without logins (`--insecure`).
    pub insecure: bool,
    /// Serve clients over TLS with this certificate (`--tls-cert`/`--tls-key`).
    pub tls: Option<TlsIdentity>,
    /// Also run the links between the coordinator and the workers over TLS: the workers
    /// serve `tls`'s certificate (which must name 127.0.0.1), and every node trusts this
    /// authority. Needs `tls`.
    pub cluster_tls: Option<ClusterTls>,
    /// Tasks go from the coordinator and between workers straight to the worker services in
    /// this process (`InProcessTransport`), not over loopback Flight. Clients still connect
    /// over Flight SQL, and control calls (registration, membership proofs, writes) still use
    /// Flight.
    pub in_process_transport: bool,
    /// Statement slots and queue, default statement timeout and query memory limit.
    pub limits: ServerLimits,
}

impl LocalClusterOptions {
    /// `workers` workers in a temporary directory, on a free loopback port, sharing the
    /// machine's cores evenly (at least one thread each).
    pub fn new(workers: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            workers,
            data_dir: None,
            storage: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            worker_threads: (cores / workers.max(1)).max(1),
            config: SessionConfig::new(),
            secret: ClusterSecret::generate(),
            allow_file_access: vec![PathBuf::from("/")],
            orphan_cleanup: OrphanCleanupConfig::default(),
            compaction: CompactionConfig::default(),
            user: shardfusion_scheduler::auth::authenticator::DEFAULT_INITIAL_USER.to_string(),
            password: None,
            token_ttl: shardfusion_scheduler::auth::tokens::DEFAULT_TOKEN_TTL,
            insecure: false,
            tls: None,
            cluster_tls: None,
            in_process_transport: false,
            limits: ServerLimits::default(),
        }
    }
}

struct Worker {
    runtime: Option<tokio::runtime::Runtime>,
    /// Its Flight URL and the in-process transport that reaches it, if any.
    in_process: Option<(String, Arc<InProcessTransport>)>,
    /// Its service, to ask what it is running.
    service: WorkerService,
}

impl Worker {
    fn stop(&mut self) {
        if let Some((url, transport)) = self.in_process.take() {
            transport.unregister(&url);
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A running in-process cluster. Dropping it stops every server.
pub struct LocalCluster {
    url: String,
    coordinator: Coordinator,
    data_dir: PathBuf,
    stop: watch::Sender<bool>,
    coordinator_task: JoinHandle<Result<(), String>>,
    /// Set once `coordinator_task` has been awaited to its end (it must not be polled again).
    coordinator_ended: bool,
    workers: Vec<Worker>,
    /// Reaches the workers' services directly, when `options.in_process_transport`.
    transport: Option<Arc<InProcessTransport>>,
    /// What the cluster was started with, for restarting workers.
    options: LocalClusterOptions,
    temp: Option<tempfile::TempDir>,
}

impl LocalCluster {
    /// Starts the coordinator (on the current Tokio runtime) and the workers, and registers
    /// the workers with the coordinator.
    pub async fn start(options: LocalClusterOptions) -> Result<Self, LocalClusterError> {
        if options.workers == 0 {
            return Err(LocalClusterError::NoWorkers);
        }
        let (dir, temp) = match options.data_dir.clone() {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::tempdir().map_err(|source| LocalClusterError::DataDir {
                    path: std::env::temp_dir(),
                    source,
                })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let (stop, stopped) = watch::channel(false);
        let coordinator = shardfusion_scheduler::server::open_with(
            &dir.join("coordinator"),
            options.storage.as_ref(),
            options.secret.clone(),
            options.config.clone(),
            shardfusion_scheduler::statements::file_access::FileAccess::granted(
                &options.allow_file_access,
            )
            .map_err(|e| LocalClusterError::Coordinator(e.to_string()))?,
        )
        .map_err(|e| LocalClusterError::Coordinator(e.to_string()))?;
        coordinator
            .cluster()
            .orphans
            .set_config(options.orphan_cleanup);
        coordinator
            .cluster()
            .compaction
            .set_config(options.compaction);
        options.limits.apply(coordinator.cluster());
        let auth = &coordinator.cluster().auth;
        auth.set_token_ttl(options.token_ttl);
        auth.bootstrap(
            &coordinator.cluster().catalog,
            &options.user,
            options.password.as_deref(),
        )
        .map_err(|e| LocalClusterError::Coordinator(e.to_string()))?;
        let serve_options = shardfusion_scheduler::server::ServeOptions {
            insecure: options.insecure,
            tls: options.tls.clone(),
        };
        if options.cluster_tls.is_some() && options.tls.is_none() {
            return Err(LocalClusterError::Coordinator(
                "TLS between the nodes needs a certificate for them to serve (tls)".into(),
            ));
        }
        coordinator
            .cluster()
            .workers
            .set_tls(options.cluster_tls.clone());
        // The server runs in a background task, where a refusal would only be logged while
        // the caller went on as if a coordinator were serving.
        shardfusion_scheduler::server::check_listen_address(
            options.listen,
            &coordinator,
            &serve_options,
        )
        .map_err(|e| LocalClusterError::ListenRefused {
            reason: e.to_string(),
        })?;
        let listener = TcpListener::bind(options.listen).await.map_err(|source| {
            LocalClusterError::Listen {
                address: options.listen.to_string(),
                source,
            }
        })?;
        let address = listener
            .local_addr()
            .map_err(|source| LocalClusterError::Listen {
                address: options.listen.to_string(),
                source,
            })?;
        let coordinator_task = tokio::spawn({
            let coordinator = coordinator.clone();
            let done = until_stopped(stopped.clone());
            async move {
                shardfusion_scheduler::server::serve(listener, coordinator, serve_options, done)
                    .await
                    .map_err(|e| e.to_string())
            }
        });
        let transport = options.in_process_transport.then(|| {
            let transport = Arc::new(InProcessTransport::new(options.secret.clone()));
            coordinator
                .cluster()
                .set_transport(Arc::clone(&transport) as Arc<dyn Transport>);
            transport
        });
        let mut cluster = Self {
            url: match options.tls {
                Some(_) => format!("grpc+tls://{address}"),
                None => format!("grpc://{address}"),
            },
            transport,
            coordinator,
            data_dir: dir.clone(),
            stop,
            coordinator_task,
            coordinator_ended: false,
            workers: Vec::new(),
            options: options.clone(),
            temp,
        };
        for index in 1..=options.workers {
            let worker = start_worker(
                &dir,
                index,
                &options,
                &cluster.coordinator,
                cluster.transport.as_ref(),
                &stopped,
            )
            .await
            .map_err(|reason| LocalClusterError::Worker { index, reason })?;
            cluster.workers.push(worker);
        }
        Ok(cluster)
    }

    /// The coordinator's Flight SQL URL, e.g. `grpc://127.0.0.1:50050`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// How many query fragments the workers are streaming now.
    pub fn running_fragments(&self) -> usize {
        self.workers
            .iter()
            .map(|worker| worker.service.running_fragments())
            .sum()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether the data directory is temporary (removed on drop).
    pub fn is_temporary(&self) -> bool {
        self.temp.is_some()
    }

    /// Stops worker `index` (0-based) abruptly: its server and open streams are dropped.
    pub fn kill_worker(&mut self, index: usize) {
        if let Some(worker) = self.workers.get_mut(index) {
            worker.stop();
        }
    }

    /// Starts worker `index` (0-based) again, as a restarted process would: on a new port,
    /// over the same data directory and identity, registering with the coordinator again.
    pub async fn restart_worker(&mut self, index: usize) -> Result<(), LocalClusterError> {
        if index >= self.workers.len() {
            return Err(LocalClusterError::Worker {
                index: index + 1,
                reason: format!("there is no worker {}", index + 1),
            });
        }
        if let Some(worker) = self.workers.get_mut(index) {
            worker.stop();
        }
        let stopped = self.stop.subscribe();
        let worker = start_worker(
            &self.data_dir,
            index + 1,
            &self.options,
            &self.coordinator,
            self.transport.as_ref(),
            &stopped,
        )
        .await
        .map_err(|reason| LocalClusterError::Worker {
            index: index + 1,
            reason,
        })?;
        self.workers[index] = worker;
        Ok(())
    }

    /// Completes only if the coordinator's server stops before [`LocalCluster::shutdown`]
    /// (it failed), saying why; a program serving the cluster should then exit with that
    /// error rather than stay up without a coordinator.
    pub async fn coordinator_stopped(&mut self) -> CoordinatorStopped {
        if self.coordinator_ended {
            return CoordinatorStopped {
                reason: "it had already stopped".to_string(),
            };
        }
        let ended = (&mut self.coordinator_task).await;
        self.coordinator_ended = true;
        let reason = match ended {
            Ok(Ok(())) => "it shut down".to_string(),
            Ok(Err(reason)) => reason,
            Err(e) => e.to_string(),
        };
        CoordinatorStopped { reason }
    }

    /// Stops every server, waiting up to 10 s for the coordinator to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if !self.coordinator_ended {
            let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.coordinator_task).await;
        }
        for worker in &mut self.workers {
            worker.stop();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.coordinator_task.abort();
        for worker in &mut self.workers {
            worker.stop();
        }
    }
}

async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Starts worker `index` on its own runtime and registers it (the coordinator checks its
/// membership proof over loopback, as for a separate process).
async fn start_worker(
    dir: &Path,
    index: usize,
    options: &LocalClusterOptions,
    coordinator: &Coordinator,
    transport: Option<&Arc<InProcessTransport>>,
    stopped: &watch::Receiver<bool>,
) -> Result<Worker, String> {
    let worker_dir = dir.join(format!("worker-{index}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.worker_threads.max(1))
        .thread_name(format!("shardfusion-worker-{index}"))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let uuid = registration::worker_uuid(&worker_dir).map_err(|e| e.to_string())?;
    let root =
        DataRoot::open_with(&worker_dir, options.storage.as_ref()).map_err(|e| e.to_string())?;
    let mut service =
        WorkerService::try_new(root, options.secret.clone()).map_err(|e| e.to_string())?;
    // Over TLS between the nodes, a worker serves the cluster's certificate.
    let tls = options.cluster_tls.as_ref().and(options.tls.clone());
    if let Some(cluster_tls) = &options.cluster_tls {
        service = service
            .with_cluster_tls(cluster_tls.clone())
            .map_err(|e| e.to_string())?;
    }
    let mut in_process = None;
    if let Some(transport) = transport {
        service = service
            .with_peer_transport(Arc::clone(transport) as Arc<dyn Transport>)
            .map_err(|e| e.to_string())?;
        let url = format!("http://127.0.0.1:{port}");
        transport.register(&url, service.clone(), runtime.handle().clone());
        in_process = Some((url, Arc::clone(transport)));
    }
    let done = until_stopped(stopped.clone());
    let handle = service.clone();
    runtime.spawn(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => {
                let served =
                    shardfusion_executor::serve_service(listener, service, tls.as_ref(), done)
                        .await;
                if let Err(e) = served {
                    eprintln!("worker stopped: {e}");
                }
            }
            Err(e) => eprintln!("worker cannot listen: {e}"),
        }
    });
    let mut worker = Worker {
        runtime: Some(runtime),
        in_process,
        service: handle,
    };
    if let Err(e) = coordinator.register_worker("127.0.0.1", port, &uuid).await {
        // A runtime must not be dropped inside this async context: shut it down instead.
        worker.stop();
        return Err(e.to_string());
    }
    Ok(worker)
}
