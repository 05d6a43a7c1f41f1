//! `shardfusion local`: a whole cluster in one process — a coordinator and N workers, each
//! worker with its own data directory and its own loopback Flight endpoint, sharing a
//! generated cluster secret (see `shardfusion_embedded::LocalCluster`).

use std::net::SocketAddr;
use std::path::PathBuf;

use shardfusion_common::object_storage::StorageUrl;
use shardfusion_embedded::{LocalCluster, LocalClusterOptions};
use shardfusion_scheduler::limits::server_limits::ServerLimits;

/// What `shardfusion local` was asked to run.
pub struct LocalRun {
    pub workers: usize,
    pub data_dir: Option<PathBuf>,
    /// Shared object storage for every node's shard files (`--storage`).
    pub storage: Option<StorageUrl>,
    pub listen: SocketAddr,
    /// Load the demo tables and run the demo queries once started.
    pub demo: bool,
    pub allow_file_access: Vec<PathBuf>,
    pub users: super::users::UserArgs,
    pub tls: super::tls_args::ServeTlsArgs,
    pub limits: ServerLimits,
}

pub async fn run(request: LocalRun) -> Result<(), String> {
    let LocalRun {
        workers,
        data_dir,
        storage,
        listen,
        demo,
        allow_file_access,
        users,
        tls,
        limits,
    } = request;
    let mut options = LocalClusterOptions::new(workers);
    options.limits = limits;
    options.tls = tls.identity()?;
    options.token_ttl = users.token_ttl();
    options.user = users.user.clone();
    options.password = users.password.clone();
    options.insecure = users.insecure;
    options.allow_file_access = allow_file_access;
    options.data_dir = data_dir;
    options.storage = storage;
    options.listen = listen;
    // DataFusion options come from DATAFUSION_* environment variables, as in DataFusion.
    options.config = datafusion::prelude::SessionConfig::from_env().map_err(|e| e.to_string())?;
    let mut cluster = LocalCluster::start(options)
        .await
        .map_err(|e| e.to_string())?;
    let url = cluster.url().to_string();
    println!("ShardFusion local cluster: 1 coordinator, {workers} workers");
    println!("Flight SQL URL: {url}");
    println!(
        "Data directory: {}{}",
        cluster.data_dir().display(),
        if cluster.is_temporary() {
            " (temporary)"
        } else {
            ""
        }
    );
    let login = users.password.clone().map(|p| (users.user.clone(), p));
    // A self-signed certificate is its own authority.
    let tls_ca = tls.tls_cert.clone();
    if demo && let Err(e) = super::demo::run(&url, login.clone(), tls_ca.as_deref()).await {
        eprintln!("demo failed: {e}");
    }
    let user = match &login {
        Some(_) => format!(" --user {}", users.user),
        None => String::new(),
    };
    let ca = match &tls_ca {
        Some(cert) => format!(" --tls-ca {}", cert.display()),
        None => String::new(),
    };
    println!("Connect with: shardfusion sql --url {url}{user}{ca}   (Ctrl-C stops the cluster)");
    tokio::select! {
        () = super::shutdown_signal() => {}
        // Without its coordinator the cluster is useless: exit with the reason.
        stopped = cluster.coordinator_stopped() => return Err(stopped.to_string()),
    }
    println!("Shutting down...");
    cluster.shutdown().await;
    Ok(())
}
