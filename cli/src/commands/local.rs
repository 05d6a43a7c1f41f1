//! `shardfusion local`: a whole cluster in one process — a coordinator and N workers, each
//! worker with its own data directory and its own loopback Flight endpoint, sharing a
//! generated cluster secret (see `shardfusion_embedded::LocalCluster`).

use std::net::SocketAddr;
use std::path::PathBuf;

use shardfusion_embedded::{LocalCluster, LocalClusterOptions};

pub async fn run(
    workers: usize,
    data_dir: Option<PathBuf>,
    listen: SocketAddr,
    demo: bool,
    allow_file_access: Vec<PathBuf>,
) -> Result<(), String> {
    let mut options = LocalClusterOptions::new(workers);
    options.allow_file_access = allow_file_access;
    options.data_dir = data_dir;
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
    if demo && let Err(e) = super::demo::run(&url).await {
        eprintln!("demo failed: {e}");
    }
    println!("Connect with: shardfusion sql --url {url}   (Ctrl-C stops the cluster)");
    tokio::select! {
        () = super::shutdown_signal() => {}
        // Without its coordinator the cluster is useless: exit with the reason.
        stopped = cluster.coordinator_stopped() => return Err(stopped.to_string()),
    }
    println!("Shutting down...");
    cluster.shutdown().await;
    Ok(())
}
