//! `shardfusion worker`: serve shards and fragments, and register with the coordinator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shardfusion_common::wire::RegisterWorkerRequest;
use shardfusion_executor::{WorkerConfig, registration};
use tokio::net::TcpListener;

pub async fn run(
    listen: SocketAddr,
    data_dir: PathBuf,
    coordinator: String,
    advertise_host: Option<String>,
    secret: Option<String>,
    tls: super::tls_args::ServeTlsArgs,
    cluster_tls: super::tls_args::ClusterTlsArgs,
) -> Result<(), String> {
    let secret = super::cluster_secret::for_worker(secret)?;
    let identity = tls.identity()?;
    let cluster_tls = cluster_tls.cluster_tls()?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let uuid = registration::worker_uuid(&data_dir).map_err(|e| e.to_string())?;
    let config = WorkerConfig {
        data_dir: data_dir.clone(),
        secret: secret.clone(),
        tls: identity,
        cluster_tls: cluster_tls.clone(),
    };
    let server = tokio::spawn(shardfusion_executor::serve(
        listener,
        config,
        super::shutdown_signal(),
    ));
    let request = RegisterWorkerRequest {
        node_name: advertise_host.unwrap_or_else(|| {
            if address.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                address.ip().to_string()
            }
        }),
        node_port: u32::from(address.port()),
        worker_uuid: uuid,
    };
    let registered = registration::register(
        &coordinator,
        &secret,
        cluster_tls.as_ref(),
        request,
        Duration::from_secs(60),
    )
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "ShardFusion worker {address} registered with {coordinator} as node {}",
        registered.node_id
    );
    match server.await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
