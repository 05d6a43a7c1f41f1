//! [`ProcessCluster`]: a coordinator and workers as separate `shardfusion` processes on
//! loopback, for measurements that must see one node alone (e.g. the coordinator's memory).
//! Every process is killed when the cluster is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::TestClient;

pub struct ProcessCluster {
    pub url: String,
    coordinator: Child,
    workers: Vec<Child>,
    /// The command-line arguments each worker was started with (to restart it the same way).
    worker_args: Vec<Vec<String>>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    /// Every node's `--storage`, if shard files are in shared object storage.
    storage: Option<String>,
    /// The coordinator's port, which workers register with.
    port: u16,
    _dir: tempfile::TempDir,
}

/// The `shardfusion` binary: `$SHARDFUSION_BIN`, or the one built next to this executable.
pub fn shardfusion_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SHARDFUSION_BIN") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("shardfusion"), dir.join("../shardfusion")]
        .into_iter()
        .find(|p| p.is_file())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts one process; its output goes to `$SHARDFUSION_TEST_LOG_DIR/<pid>.log` when that
/// is set (for debugging a test), else nowhere.
fn spawn(binary: &Path, args: &[String], env: &[(String, String)]) -> Result<Child, String> {
    let log = std::env::var_os("SHARDFUSION_TEST_LOG_DIR").and_then(|dir| {
        let name = format!(
            "{}-{}.log",
            args.first().map_or("node", |a| a.as_str()),
            free_port().ok()?
        );
        std::fs::File::create(PathBuf::from(dir).join(name)).ok()
    });
    let (stdout, stderr) = match log.and_then(|f| Some((f.try_clone().ok()?, f))) {
        Some((out, err)) => (Stdio::from(out), Stdio::from(err)),
        None => (Stdio::null(), Stdio::null()),
    };
    Command::new(binary)
        .args(args)
        .env("SHARDFUSION_CLUSTER_SECRET", ProcessCluster::SECRET)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

/// How a [`ProcessCluster`] starts its processes.
#[derive(Debug, Clone, Default)]
pub struct ProcessClusterOptions {
    /// Extra environment variables for every process.
    pub env: Vec<(String, String)>,
    /// `--storage` for every node (shard files in shared object storage).
    pub storage: Option<String>,
    /// Extra arguments for the coordinator.
    pub coordinator_args: Vec<String>,
}

impl ProcessCluster {
    /// The cluster secret every process is started with.
    pub const SECRET: &str = "benchmark-cluster-secret";

    /// Starts the coordinator and `workers` workers and waits until all workers registered.
    pub async fn start(binary: &Path, workers: usize) -> Result<Self, String> {
        Self::start_with_env(binary, workers, &[]).await
    }

    /// [`Self::start`] with extra environment variables for every process.
    pub async fn start_with_env(
        binary: &Path,
        workers: usize,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let options = ProcessClusterOptions {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        Self::start_with(binary, workers, options).await
    }

    /// [`Self::start`] with `options`.
    pub async fn start_with(
        binary: &Path,
        workers: usize,
        options: ProcessClusterOptions,
    ) -> Result<Self, String> {
        let ProcessClusterOptions {
            env,
            storage,
            coordinator_args,
        } = options;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port()?;
        let mut args: Vec<String> = vec![
            "coordinator".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            dir.path().join("coordinator").display().to_string(),
            // The harness's coordinator runs as its own user and loads that user's files
            // with server-side COPY, as `shardfusion local` may.
            "--allow-file-access".into(),
            "/".into(),
        ];
        args.extend(
            storage
                .iter()
                .flat_map(|s| ["--storage".to_string(), s.clone()]),
        );
        args.extend(coordinator_args);
        let coordinator = spawn(binary, &args, &env)?;
        let mut cluster = Self {
            url: format!("grpc://127.0.0.1:{port}"),
            coordinator,
            workers: Vec::new(),
            worker_args: Vec::new(),
            binary: binary.to_path_buf(),
            env,
            storage,
            port,
            _dir: dir,
        };
        for _ in 0..workers {
            cluster.add_worker()?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut client) = TestClient::try_connect(&cluster.url).await
                && let Ok(batches) = client.query("SELECT count(*) FROM pg_dist_node").await
                && batches.iter().find(|b| b.num_rows() > 0).and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .map(|a| a.value(0))
                }) == Some(workers as i64)
            {
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                return Err("the coordinator and workers did not come up within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn coordinator_pid(&self) -> u32 {
        self.coordinator.id()
    }

    /// The process id of worker `index` (0-based).
    pub fn worker_pid(&self, index: usize) -> Option<u32> {
        self.workers.get(index).map(Child::id)
    }

    /// The data directory of worker `index` (0-based).
    pub fn worker_data_dir(&self, index: usize) -> Option<PathBuf> {
        let args = self.worker_args.get(index)?;
        let dir = args.iter().skip_while(|a| *a != "--data-dir").nth(1)?;
        Some(PathBuf::from(dir))
    }

    /// The port worker `index` (0-based) listens on.
    pub fn worker_port(&self, index: usize) -> Option<u16> {
        let args = self.worker_args.get(index)?;
        let listen = args.iter().skip_while(|a| *a != "--listen").nth(1)?;
        listen.rsplit(':').next()?.parse().ok()
    }

    /// Starts one more worker process, which registers with the coordinator on its own (as
    /// `shardfusion worker --coordinator` does); returns its index. It is a node once
    /// `pg_dist_node` lists it.
    pub fn add_worker(&mut self) -> Result<usize, String> {
        let index = self.workers.len();
        let mut args: Vec<String> = vec![
            "worker".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()?),
            "--data-dir".into(),
            self._dir
                .path()
                .join(format!("worker-{}", index + 1))
                .display()
                .to_string(),
            "--coordinator".into(),
            format!("http://127.0.0.1:{}", self.port),
        ];
        if let Some(storage) = &self.storage {
            args.extend(["--storage".to_string(), storage.clone()]);
        }
        let worker = spawn(&self.binary, &args, &self.env)?;
        self.workers.push(worker);
        self.worker_args.push(args);
        Ok(index)
    }

    /// Kills worker `index` (SIGKILL) and leaves it down.
    pub fn kill_worker(&mut self, index: usize) -> Result<(), String> {
        let worker = self
            .workers
            .get_mut(index)
            .ok_or_else(|| format!("no worker {index}"))?;
        let _ = worker.kill();
        let _ = worker.wait();
        Ok(())
    }

    /// Starts worker `index` again on the same port and data directory (killing it first if
    /// it still runs).
    pub fn restart_worker(&mut self, index: usize) -> Result<(), String> {
        self.kill_worker(index)?;
        let args = self
            .worker_args
            .get(index)
            .cloned()
            .ok_or_else(|| format!("no worker {index}"))?;
        self.workers[index] = spawn(&self.binary, &args, &self.env)?;
        Ok(())
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for child in self
            .workers
            .iter_mut()
            .chain(std::iter::once(&mut self.coordinator))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Peak resident memory (VmHWM) of process `pid`, in bytes.
pub fn peak_rss_of(pid: u32) -> u64 {
    crate::machine::kib_field(&format!("/proc/{pid}/status"), "VmHWM") * 1024
}

/// Resets the peak-RSS counter of process `pid` (Linux ≥ 4.0).
pub fn reset_peak_rss_of(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}
