//! `shardfusion coordinator`: serve Flight SQL over a durable catalog.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

pub async fn run(
    listen: SocketAddr,
    data_dir: PathBuf,
    secret: Option<String>,
) -> Result<(), String> {
    let secret = super::cluster_secret(secret, &listen)?;
    let coordinator =
        shardfusion_scheduler::server::open(&data_dir, secret).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!("ShardFusion coordinator listening on grpc://{address}");
    shardfusion_scheduler::server::serve(listener, coordinator, super::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}
