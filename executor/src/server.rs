//! `serve`: runs a worker on a listener it is given until `shutdown` resolves.

use std::future::Future;
use std::path::PathBuf;

use arrow_flight::flight_service_server::FlightServiceServer;
use shardfusion_common::auth::ClusterSecret;
use shardfusion_common::object_storage::StorageUrl;
use shardfusion_common::storage::DataRoot;
use shardfusion_common::tls::{ClusterTls, TlsIdentity};
use tokio::net::TcpListener;

use crate::error::ExecutorError;
use crate::service::WorkerService;

/// Largest gRPC message a worker accepts (fragments can list many files).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// What a worker needs to run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub data_dir: PathBuf,
    /// Keep shard files in this shared object storage instead of `data_dir` (`--storage`).
    pub storage: Option<StorageUrl>,
    pub secret: ClusterSecret,
    /// Serve TLS with this certificate (`--tls-cert`/`--tls-key`).
    pub tls: Option<TlsIdentity>,
    /// Reach the other nodes over TLS, trusting this authority (`--tls-ca`).
    pub cluster_tls: Option<ClusterTls>,
}

/// Serves the worker Flight service on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ExecutorError> {
    let root = DataRoot::open_with(&config.data_dir, config.storage.as_ref())?;
    let mut service = WorkerService::try_new(root, config.secret)?;
    if let Some(cluster_tls) = config.cluster_tls {
        service = service.with_cluster_tls(cluster_tls)?;
    }
    serve_service(listener, service, config.tls.as_ref(), shutdown).await
}

/// Serves `service` on `listener` until `shutdown` completes, over TLS with `tls` if given.
pub async fn serve_service(
    listener: TcpListener,
    service: WorkerService,
    tls: Option<&TlsIdentity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ExecutorError> {
    let server = FlightServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // Small request/response messages must not wait for delayed ACKs.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder =
            builder
                .tls_config(tls.server_config())
                .map_err(|e| ExecutorError::BadRequest {
                    reason: format!("cannot serve TLS with the given certificate and key: {e}"),
                })?;
    }
    builder
        .add_service(server)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| ExecutorError::BadRequest {
            reason: format!("worker server failed: {e}"),
        })
}
