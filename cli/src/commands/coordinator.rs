//! `shardfusion coordinator`: serve Flight SQL over a durable catalog. Without a configured
//! cluster secret it generates one and prints how to start workers with it.

use std::net::SocketAddr;
use std::path::PathBuf;

use shardfusion_scheduler::statements::file_access::FileAccess;
use tokio::net::TcpListener;

use super::cluster_secret;

pub async fn run(
    listen: SocketAddr,
    data_dir: PathBuf,
    secret: Option<String>,
    allow_file_access: Vec<PathBuf>,
    orphan_grace_period: std::time::Duration,
    compaction: shardfusion_scheduler::cluster::compaction::CompactionConfig,
) -> Result<(), String> {
    let secret = cluster_secret::for_coordinator(secret, &data_dir)?;
    let file_access = FileAccess::granted(&allow_file_access).map_err(|e| e.to_string())?;
    let coordinator =
        shardfusion_scheduler::server::open(&data_dir, secret.secret.clone(), file_access)
            .map_err(|e| e.to_string())?;
    let orphans = &coordinator.cluster().orphans;
    orphans.set_config(
        shardfusion_scheduler::cluster::orphan_cleanup::OrphanCleanupConfig {
            grace_period: orphan_grace_period,
            ..orphans.config()
        },
    );
    coordinator.cluster().compaction.set_config(compaction);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!("ShardFusion coordinator listening on grpc://{address}");
    if let Some(stored) = &secret.generated {
        println!(
            "{}",
            cluster_secret::worker_instructions(&secret.secret, stored, address)
        );
    }
    shardfusion_scheduler::server::serve(listener, coordinator, super::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}
