//! `shardfusion worker`: serve shards and fragments, and register with the coordinator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shardfusion_common::object_storage::StorageUrl;
use shardfusion_common::wire::RegisterWorkerRequest;
use shardfusion_executor::{WorkerConfig, registration};
use tokio::net::TcpListener;

/// `shardfusion worker`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[arg(long, default_value = "127.0.0.1:50061")]
    pub listen: SocketAddr,
    /// Where this worker keeps its state, and its shard files unless --storage is given.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Keep shard files in shared S3-compatible storage, s3://bucket/prefix: the same
    /// URL on every node (endpoint, region and credentials from AWS_ENDPOINT_URL,
    /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    #[arg(long, value_name = "URL")]
    pub storage: Option<StorageUrl>,
    /// The coordinator to register with, e.g. http://127.0.0.1:50050.
    #[arg(long)]
    pub coordinator: String,
    /// The host name the coordinator should use to reach this worker (default: the
    /// --listen address, or 127.0.0.1 when that is 0.0.0.0).
    #[arg(long)]
    pub advertise_host: Option<String>,
    /// The coordinator's cluster secret (required; a coordinator started without one
    /// printed it and keeps it in its DATA_DIR/cluster_secret). The hosts' clocks must
    /// agree to within 60 s: every request carries a timestamped MAC.
    #[arg(long, env = "SHARDFUSION_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    #[command(flatten)]
    pub tls: super::tls_args::ServeTlsArgs,
    #[command(flatten)]
    pub cluster_tls: super::tls_args::ClusterTlsArgs,
}

pub async fn run(args: WorkerArgs) -> Result<(), String> {
    let WorkerArgs {
        listen,
        data_dir,
        storage,
        coordinator,
        advertise_host,
        cluster_secret: secret,
        tls,
        cluster_tls,
    } = args;
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
        storage,
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
