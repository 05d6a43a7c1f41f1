//! The `shardfusion` command: run a coordinator, a worker, an embedded local cluster, or a SQL
//! client. Each subcommand lives in `commands/`; this file only parses arguments.

mod commands;
mod output;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use shardfusion_common::object_storage::StorageUrl;

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
    Coordinator(commands::coordinator::CoordinatorArgs),
    /// Run a worker that stores shards and executes plan fragments.
    Worker(commands::worker::WorkerArgs),
    /// Run a whole cluster in one process: a coordinator and N workers on loopback.
    Local {
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Keep the cluster's data here (default: a temporary directory, removed on exit).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Keep shard files in shared S3-compatible storage, s3://bucket/prefix (endpoint,
        /// region and credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
        /// AWS_SECRET_ACCESS_KEY).
        #[arg(long, value_name = "URL")]
        storage: Option<StorageUrl>,
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
        #[command(flatten)]
        users: commands::users::UserArgs,
        #[command(flatten)]
        tls: commands::tls_args::ServeTlsArgs,
        #[command(flatten)]
        limits: commands::limit_args::LimitArgs,
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
        /// Log in as this user (needed once the coordinator has users with passwords).
        #[arg(long, env = "SHARDFUSION_USER")]
        user: Option<String>,
        /// The user's password.
        #[arg(long, env = "SHARDFUSION_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// For a grpc+tls:// URL: the PEM certificate authority that signed the
        /// coordinator's certificate.
        #[arg(long, value_name = "PEM")]
        tls_ca: Option<PathBuf>,
    },
}

/// Reads `user`'s password from standard input (one line).
fn prompt_password(user: &str) -> String {
    eprint!("Password for user {user}: ");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.trim_end_matches(['\r', '\n']).to_string()
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
        Command::Coordinator(args) => commands::coordinator::run(args).await,
        Command::Worker(args) => commands::worker::run(args).await,
        Command::Local {
            workers,
            data_dir,
            storage,
            listen,
            demo,
            allow_file_access,
            no_file_access,
            users,
            tls,
            limits,
        } => {
            let file_access = match (no_file_access, allow_file_access.is_empty()) {
                (true, _) => Vec::new(),
                (false, true) => vec![PathBuf::from("/")],
                (false, false) => allow_file_access,
            };
            match limits.limits() {
                Ok(limits) => {
                    commands::local::run(commands::local::LocalRun {
                        workers,
                        data_dir,
                        storage,
                        listen,
                        demo,
                        allow_file_access: file_access,
                        users,
                        tls,
                        limits,
                    })
                    .await
                }
                Err(e) => Err(e),
            }
        }
        Command::Sql {
            url,
            command,
            format,
            user,
            password,
            tls_ca,
        } => {
            let login = match (user, password) {
                (Some(user), Some(password)) => Some((user, password)),
                (None, None) => None,
                (Some(user), None) => {
                    let password = prompt_password(&user);
                    Some((user, password))
                }
                (None, Some(password)) => Some(("admin".to_string(), password)),
            };
            commands::sql::run(url, command, format, login, tls_ca).await
        }
    };
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
