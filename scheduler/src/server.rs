//! Opening a coordinator over its data directory and serving it on a listener.
//!
//! The data directory holds `catalog.db` (the SQLite catalog) and `local/` (the Parquet files
//! of local tables). Until some superuser has a password (`--password`), the coordinator
//! trusts its clients, so it refuses to listen anywhere but loopback unless told `--insecure`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use datafusion::prelude::SessionConfig;
use shardfusion_catalog::Catalog;
use shardfusion_common::auth::ClusterSecret;
use shardfusion_common::object_storage::StorageUrl;
use shardfusion_common::storage::DataRoot;
use shardfusion_common::tls::TlsIdentity;
use tokio::net::TcpListener;

use crate::cluster::shared_state::Cluster;
use crate::cluster::worker_pool::MAX_MESSAGE_BYTES;
use crate::coordinator::Coordinator;
use crate::error::{Result, SchedulerError};
use crate::frontend::flight_sql::FlightSqlServer;
use crate::frontend::require_login::RequireLogin;
use crate::statements::file_access::FileAccess;

/// Opens (creating if needed) the coordinator whose state lives in `data_dir`.
/// DataFusion options come from `DATAFUSION_*` environment variables, as in DataFusion.
/// Server-side `COPY` may use the directories of `file_access` only.
/// Shard files live in the shared `storage` when given (every node must use the same), else
/// on each node's disk; the catalog remembers which, and refuses to start with another.
pub fn open(
    data_dir: &Path,
    storage: Option<&StorageUrl>,
    secret: ClusterSecret,
    file_access: FileAccess,
) -> Result<Coordinator> {
    open_with(
        data_dir,
        storage,
        secret,
        SessionConfig::from_env()?,
        file_access,
    )
}

/// [`open`] with the DataFusion options every statement starts from.
pub fn open_with(
    data_dir: &Path,
    storage: Option<&StorageUrl>,
    secret: ClusterSecret,
    config: SessionConfig,
    file_access: FileAccess,
) -> Result<Coordinator> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        SchedulerError::invalid(format!(
            "cannot create data directory {}: {e}",
            data_dir.display()
        ))
    })?;
    let catalog = Arc::new(Catalog::open(&data_dir.join("catalog.db"))?);
    let root = DataRoot::open_with(data_dir.join("local"), storage)?;
    catalog.bind_storage(&root.storage_label())?;
    let cluster = Cluster::try_new(catalog, secret, root, config, file_access)?;
    Ok(Coordinator::new(Arc::new(cluster)))
}

/// How the coordinator serves its clients.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Listen beyond loopback even though clients need no login (`--insecure`).
    pub insecure: bool,
    /// Serve TLS with this certificate (`--tls-cert`/`--tls-key`); plain HTTP/2 without.
    pub tls: Option<TlsIdentity>,
}

/// Refuses any address but loopback while clients need no login (no superuser has a
/// password), unless `options.insecure`: clients elsewhere must not reach a coordinator that
/// trusts everyone. [`serve`] checks it too; programs that serve in a background task check
/// it first, so that the refusal reaches their user.
pub fn check_listen_address(
    address: SocketAddr,
    coordinator: &Coordinator,
    options: &ServeOptions,
) -> Result<()> {
    if address.ip().is_loopback() {
        return Ok(());
    }
    if coordinator
        .cluster()
        .catalog
        .snapshot()
        .roles
        .require_login()
    {
        return Ok(());
    }
    if options.insecure {
        tracing::warn!(
            "listening on {address} without authentication (--insecure): anyone who can reach \
             it is a superuser"
        );
        return Ok(());
    }
    Err(SchedulerError::invalid(format!(
        "refusing to listen on {address}: no user has a password, so every client would be a \
         superuser. Start with --password (or SHARDFUSION_PASSWORD) to create the admin user, \
         listen on loopback (127.0.0.1 or ::1), or pass --insecure if the network is trusted"
    )))
}

/// Serves Flight SQL on `listener` until `shutdown` completes, collecting garbage and orphaned
/// shard files ([`crate::cluster::orphan_cleanup::run`]) and compacting small shard files
/// ([`crate::cluster::compaction::run`]) in the background meanwhile.
pub async fn serve(
    listener: TcpListener,
    coordinator: Coordinator,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address = listener
        .local_addr()
        .map_err(|e| SchedulerError::invalid(format!("bad listener: {e}")))?;
    check_listen_address(address, &coordinator, &options)?;
    let cluster = Arc::clone(coordinator.cluster());
    // Owned by the server: it stops when the server does.
    let _cleaner = datafusion::common::runtime::SpawnedTask::spawn(
        crate::cluster::orphan_cleanup::run(Arc::clone(coordinator.cluster())),
    );
    let _compactor = datafusion::common::runtime::SpawnedTask::spawn(
        crate::cluster::compaction::run(Arc::clone(coordinator.cluster())),
    );
    let service = FlightServiceServer::new(FlightSqlServer::new(coordinator))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // Small request/response messages must not wait for delayed ACKs.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &options.tls {
        builder = builder.tls_config(tls.server_config()).map_err(|e| {
            SchedulerError::invalid(format!(
                "cannot serve TLS with the given certificate and key: {e}"
            ))
        })?;
    }
    builder
        .add_service(RequireLogin::new(service, cluster))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| SchedulerError::invalid(format!("coordinator server failed: {e}")))
}
