//! The `shardfusion` command: run a coordinator, a worker, an embedded local cluster, or a SQL
//! client. Each subcommand lives in `commands/`; this file only parses arguments.

mod commands;
mod output;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// jemalloc rather than glibc's malloc: glibc hands large freed blocks (decoded Parquet pages,
/// Flight messages) back with `munmap` on every query, each a TLB shootdown on every core, and
/// keeps most of what a large load freed. jemalloc's background thread returns freed memory
/// to the system within about a second (`.cargo/config.toml` sets its decay); measured in
/// benchmarks/README.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "shardfusion",
    version,
    about = "A distributed SQL engine: Citus's architecture on Apache DataFusion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the coordinator: the Flight SQL endpoint applications connect to.
    Coordinator {
        #[arg(long, default_value = "127.0.0.1:50050")]
        listen: SocketAddr,
        /// Where the catalog and local tables are kept.
        #[arg(long)]
        data_dir: PathBuf,
        /// Shared secret of the cluster's nodes; it never crosses the network (nodes prove
        /// knowing it with per-request MACs). Without one, a random secret is generated, kept
        /// in DATA_DIR/cluster_secret, and printed once with the command that starts workers.
        #[arg(long, env = "SHARDFUSION_CLUSTER_SECRET", hide_env_values = true)]
        cluster_secret: Option<String>,
        /// Let server-side `COPY ... FROM/TO 'path'` read and write files under DIR
        /// (repeatable). Without it, clients cannot touch the coordinator host's files;
        /// client-side ingest (Flight SQL bulk ingest) always works.
        #[arg(long = "allow-file-access", value_name = "DIR")]
        allow_file_access: Vec<PathBuf>,
        /// Shard files on the workers that the catalog does not list are deleted once they
        /// are this old (orphans of crashed writes; see citus_cleanup_orphaned_resources()).
        #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
        orphan_grace_period: u64,
        /// How often shards' small files (one per point INSERT) are merged into one sorted
        /// file; 0 turns background compaction off (see shardfusion_compact_table()).
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 60,
            env = "SHARDFUSION_COMPACTION_INTERVAL_SECS"
        )]
        compaction_interval: u64,
        /// A shard is compacted once it holds this many small files.
        #[arg(
            long,
            value_name = "FILES",
            default_value_t = 8,
            value_parser = clap::value_parser!(u64).range(2..),
            env = "SHARDFUSION_COMPACTION_MIN_FILES"
        )]
        compaction_min_files: u64,
    },
    /// Run a worker that stores shards and executes plan fragments.
    Worker {
        #[arg(long, default_value = "127.0.0.1:50061")]
        listen: SocketAddr,
        /// Where this worker keeps its shard files.
        #[arg(long)]
        data_dir: PathBuf,
        /// The coordinator to register with, e.g. http://127.0.0.1:50050.
        #[arg(long)]
        coordinator: String,
        /// The host name the coordinator should use to reach this worker (default: the
        /// --listen address, or 127.0.0.1 when that is 0.0.0.0).
        #[arg(long)]
        advertise_host: Option<String>,
        /// The coordinator's cluster secret (required; a coordinator started without one
        /// printed it and keeps it in its DATA_DIR/cluster_secret). The hosts' clocks must
        /// agree to within 60 s: every request carries a timestamped MAC.
        #[arg(long, env = "SHARDFUSION_CLUSTER_SECRET", hide_env_values = true)]
        cluster_secret: Option<String>,
    },
    /// Run a whole cluster in one process: a coordinator and N workers on loopback.
    Local {
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Keep the cluster's data here (default: a temporary directory, removed on exit).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:50050")]
        listen: SocketAddr,
        /// Load a demo data set and run a few example queries.
        #[arg(long)]
        demo: bool,
        /// Let server-side `COPY ... FROM/TO 'path'` use only files under DIR (repeatable).
        /// By default a local cluster may use every file the current user can: it runs as
        /// that user, for that user.
        #[arg(
            long = "allow-file-access",
            value_name = "DIR",
            conflicts_with = "no_file_access"
        )]
        allow_file_access: Vec<PathBuf>,
        /// Refuse server-side `COPY` to and from files altogether.
        #[arg(long)]
        no_file_access: bool,
    },
    /// Run SQL against a coordinator: one statement with -c, else an interactive shell.
    Sql {
        #[arg(long, default_value = "grpc://127.0.0.1:50050")]
        url: String,
        /// The SQL to run (several statements may be separated by ';').
        #[arg(short = 'c', long = "command")]
        command: Option<String>,
        #[arg(long, value_enum, default_value_t = output::Format::Table)]
        format: output::Format,
    },
}

fn main() {
    // Statements run on these threads directly (they have the stack a statement needs).
    shardfusion_scheduler::statements::runtime::block_on_statement_runtime(run());
}

async fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,shardfusion=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Coordinator {
            listen,
            data_dir,
            cluster_secret,
            allow_file_access,
            orphan_grace_period,
            compaction_interval,
            compaction_min_files,
        } => {
            commands::coordinator::run(
                listen,
                data_dir,
                cluster_secret,
                allow_file_access,
                std::time::Duration::from_secs(orphan_grace_period),
                shardfusion_scheduler::cluster::compaction::CompactionConfig {
                    interval: std::time::Duration::from_secs(compaction_interval),
                    min_files: compaction_min_files as usize,
                    ..Default::default()
                },
            )
            .await
        }
        Command::Worker {
            listen,
            data_dir,
            coordinator,
            advertise_host,
            cluster_secret,
        } => {
            commands::worker::run(
                listen,
                data_dir,
                coordinator,
                advertise_host,
                cluster_secret,
            )
            .await
        }
        Command::Local {
            workers,
            data_dir,
            listen,
            demo,
            allow_file_access,
            no_file_access,
        } => {
            let file_access = match (no_file_access, allow_file_access.is_empty()) {
                (true, _) => Vec::new(),
                (false, true) => vec![PathBuf::from("/")],
                (false, false) => allow_file_access,
            };
            commands::local::run(workers, data_dir, listen, demo, file_access).await
        }
        Command::Sql {
            url,
            command,
            format,
        } => commands::sql::run(url, command, format).await,
    };
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
