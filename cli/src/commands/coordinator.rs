//! `shardfusion coordinator`: serve Flight SQL over a durable catalog. Without a configured
//! cluster secret it generates one and prints how to start workers with it.

use std::net::SocketAddr;
use std::path::PathBuf;

use shardfusion_common::object_storage::StorageUrl;
use shardfusion_scheduler::statements::file_access::FileAccess;
use tokio::net::TcpListener;

use super::cluster_secret;

/// `shardfusion coordinator`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CoordinatorArgs {
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub listen: SocketAddr,
    /// Where the catalog and local tables are kept.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Keep shard files in shared S3-compatible storage, s3://bucket/prefix: the same URL
    /// on every node (endpoint, region and credentials from AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). Shard moves then copy no bytes.
    #[arg(long, value_name = "URL")]
    pub storage: Option<StorageUrl>,
    /// Shared secret of the cluster's nodes; it never crosses the network (nodes prove
    /// knowing it with per-request MACs). Without one, a random secret is generated, kept
    /// in DATA_DIR/cluster_secret, and printed once with the command that starts workers.
    #[arg(long, env = "SHARDFUSION_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Let server-side `COPY ... FROM/TO 'path'` read and write files under DIR
    /// (repeatable). Without it, clients cannot touch the coordinator host's files;
    /// client-side ingest (Flight SQL bulk ingest) always works.
    #[arg(long = "allow-file-access", value_name = "DIR")]
    pub allow_file_access: Vec<PathBuf>,
    /// Shard files on the workers that the catalog does not list are deleted once they
    /// are this old (orphans of crashed writes; see citus_cleanup_orphaned_resources()).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub orphan_grace_period: u64,
    /// How often shards' small files (one per point INSERT) are merged into one sorted
    /// file; 0 turns background compaction off (see shardfusion_compact_table()).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        env = "SHARDFUSION_COMPACTION_INTERVAL_SECS"
    )]
    pub compaction_interval: u64,
    /// A shard is compacted once it holds this many small files.
    #[arg(
        long,
        value_name = "FILES",
        default_value_t = 8,
        value_parser = clap::value_parser!(u64).range(2..),
        env = "SHARDFUSION_COMPACTION_MIN_FILES"
    )]
    pub compaction_min_files: u64,
    #[command(flatten)]
    pub users: super::users::UserArgs,
    #[command(flatten)]
    pub tls: super::tls_args::ServeTlsArgs,
    #[command(flatten)]
    pub cluster_tls: super::tls_args::ClusterTlsArgs,
    #[command(flatten)]
    pub limits: super::limit_args::LimitArgs,
}

pub async fn run(args: CoordinatorArgs) -> Result<(), String> {
    let CoordinatorArgs {
        listen,
        data_dir,
        storage,
        cluster_secret: secret,
        allow_file_access,
        orphan_grace_period,
        compaction_interval,
        compaction_min_files,
        users,
        tls,
        cluster_tls,
        limits,
    } = args;
    let limits = limits.limits()?;
    let orphan_grace_period = std::time::Duration::from_secs(orphan_grace_period);
    let compaction = shardfusion_scheduler::cluster::compaction::CompactionConfig {
        interval: std::time::Duration::from_secs(compaction_interval),
        min_files: compaction_min_files as usize,
        ..Default::default()
    };
    let identity = tls.identity()?;
    let cluster_tls = cluster_tls.cluster_tls()?;
    let secret = cluster_secret::for_coordinator(secret, &data_dir)?;
    let file_access = FileAccess::granted(&allow_file_access).map_err(|e| e.to_string())?;
    let coordinator = shardfusion_scheduler::server::open(
        &data_dir,
        storage.as_ref(),
        secret.secret.clone(),
        file_access,
    )
    .map_err(|e| e.to_string())?;
    let orphans = &coordinator.cluster().orphans;
    orphans.set_config(
        shardfusion_scheduler::cluster::orphan_cleanup::OrphanCleanupConfig {
            grace_period: orphan_grace_period,
            ..orphans.config()
        },
    );
    coordinator.cluster().compaction.set_config(compaction);
    limits.apply(coordinator.cluster());
    let auth = &coordinator.cluster().auth;
    auth.set_token_ttl(users.token_ttl());
    auth.bootstrap(
        &coordinator.cluster().catalog,
        &users.user,
        users.password.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    coordinator.cluster().workers.set_tls(cluster_tls);
    let scheme = if identity.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let serve_options = shardfusion_scheduler::server::ServeOptions {
        insecure: users.insecure,
        tls: identity,
    };
    shardfusion_scheduler::server::check_listen_address(listen, &coordinator, &serve_options)
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!("ShardFusion coordinator listening on {scheme}://{address}");
    if let Some(stored) = &secret.generated {
        println!(
            "{}",
            cluster_secret::worker_instructions(&secret.secret, stored, address)
        );
    }
    shardfusion_scheduler::server::serve(
        listener,
        coordinator,
        serve_options,
        super::shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string())
}
