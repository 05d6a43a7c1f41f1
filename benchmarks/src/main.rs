//! `shardfusion-bench`: the benchmark runner. Subcommands live in their own modules; this file
//! only parses arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// jemalloc rather than glibc's malloc: glibc hands large freed blocks (decoded Parquet pages,
/// Flight messages) back with `munmap` on every query, each a TLB shootdown on every core, and
/// keeps most of what a large load freed. jemalloc's background thread returns freed memory
/// to the system within about a second (`.cargo/config.toml` sets its decay); measured in
/// benchmarks/README.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use shardfusion_benchmarks::{
    ingest_run, memory_run, rebalance_run, rewrite_run, router_run, scaleout_run, tpch_run,
};

#[derive(Parser)]
#[command(
    name = "shardfusion-bench",
    about = "Benchmarks ShardFusion against single-node DataFusion, verifying every answer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand shares.
#[derive(Args, Clone)]
struct Common {
    /// TPC-H scale factor of the generated data.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Shards per distributed table.
    #[arg(long, default_value_t = 16)]
    shards: usize,
    /// Where the generated Parquet files are cached (default ~/.cache/shardfusion/tpch-sf<SF>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the JSON, Markdown and SVG reports go.
    #[arg(long, default_value = "benchmark-results")]
    output: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// TPC-H: generate, load with the standard distribution scheme, verify, time, compare.
    Tpch {
        #[command(flatten)]
        common: Common,
        /// Workers of the embedded cluster.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long, default_value_t = 3)]
        iterations: usize,
        /// Comma-separated query numbers (default: all 22).
        #[arg(long, value_delimiter = ',')]
        queries: Vec<usize>,
        /// Measure an existing cluster (grpc://host:port) instead of an embedded one.
        #[arg(long)]
        url: Option<String>,
        /// With --url: drop and load the TPC-H tables even if the cluster has them.
        #[arg(long)]
        reload: bool,
    },
    /// Load time and rows/s of COPY and of Flight SQL bulk ingest for lineitem, against
    /// DataFusion reading and rewriting the same file locally.
    Ingest {
        #[command(flatten)]
        common: Common,
        /// Workers of the embedded cluster.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long)]
        url: Option<String>,
    },
    /// UPDATE and DELETE of 10% of lineitem (every shard), against DataFusion reading and
    /// rewriting the same file locally with the same change.
    Rewrite {
        #[command(flatten)]
        common: Common,
        /// Workers of the embedded cluster.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Runs of each statement (each on a new tenth of the table; at most 5).
        #[arg(long, default_value_t = 3)]
        iterations: usize,
        #[arg(long)]
        url: Option<String>,
    },
    /// Single-shard point queries on orders by o_orderkey from concurrent clients.
    Router {
        #[command(flatten)]
        common: Common,
        /// Workers of the embedded cluster.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long)]
        url: Option<String>,
    },
    /// The same TPC-H queries at several worker counts, with the speed-up.
    Scaleout {
        #[command(flatten)]
        common: Common,
        /// Comma-separated worker counts.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        workers: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        iterations: usize,
        /// Comma-separated query numbers.
        #[arg(long, value_delimiter = ',', default_value = "1,3,5,6,9,12,18")]
        queries: Vec<usize>,
    },
    /// TPC-H on 2 worker processes, a third joins, rebalance_table_shards() with a query loop
    /// running: time, bytes moved, coordinator I/O, loop latency before and during.
    Rebalance {
        #[command(flatten)]
        common: Common,
        /// Seconds of the query loop before the rebalance.
        #[arg(long, default_value_t = 10)]
        baseline: u64,
        /// Where the shard files live: each worker's disk, or one S3 bucket (a moto server
        /// on loopback, which must be installed: pip install 'moto[server]').
        #[arg(long, value_enum, default_value = "local")]
        storage: rebalance_run::Storage,
    },
    /// Peak memory while SELECT * FROM lineitem streams to a client.
    Memory {
        #[command(flatten)]
        common: Common,
        /// Workers of the embedded cluster.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

fn all_queries(queries: Vec<usize>) -> Vec<usize> {
    if queries.is_empty() {
        (1..=22).collect()
    } else {
        queries
    }
}

fn main() {
    // Statements run on these threads directly (they have the stack a statement needs).
    shardfusion_scheduler::statements::runtime::block_on_statement_runtime(run());
}

async fn run() {
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!(
            "note: shardfusion-bench was built in the dev profile, so its timings are not the \
             product's; `cargo shardfusion-bench ...` builds and runs it in release"
        );
    }
    let result = match cli.command {
        Command::Tpch {
            common,
            workers,
            iterations,
            queries,
            url,
            reload,
        } => tpch_run::run(tpch_run::Options {
            scale: common.scale,
            workers,
            shards: common.shards,
            iterations: iterations.max(1),
            queries: all_queries(queries),
            data_dir: common.data_dir,
            output: common.output,
            url,
            reload,
        })
        .await
        .and_then(|report| {
            if report.all_correct {
                Ok(())
            } else {
                Err("some answers differed from DataFusion's".into())
            }
        }),
        Command::Ingest {
            common,
            workers,
            url,
        } => ingest_run::run(ingest_run::Options {
            scale: common.scale,
            workers,
            shards: common.shards,
            data_dir: common.data_dir,
            output: common.output,
            url,
        })
        .await
        .map(|_| ()),
        Command::Rewrite {
            common,
            workers,
            iterations,
            url,
        } => rewrite_run::run(rewrite_run::Options {
            scale: common.scale,
            workers,
            shards: common.shards,
            iterations,
            data_dir: common.data_dir,
            output: common.output,
            url,
        })
        .await
        .map(|_| ()),
        Command::Router {
            common,
            workers,
            clients,
            duration,
            url,
        } => router_run::run(router_run::Options {
            scale: common.scale,
            workers,
            shards: common.shards,
            clients: clients.max(1),
            duration: Duration::from_secs(duration.max(1)),
            data_dir: common.data_dir,
            output: common.output,
            url,
        })
        .await
        .map(|_| ()),
        Command::Scaleout {
            common,
            workers,
            iterations,
            queries,
        } => scaleout_run::run(scaleout_run::Options {
            scale: common.scale,
            workers,
            shards: common.shards,
            iterations: iterations.max(1),
            queries,
            data_dir: common.data_dir,
            output: common.output,
        })
        .await
        .map(|_| ()),
        Command::Rebalance {
            common,
            baseline,
            storage,
        } => rebalance_run::run(rebalance_run::Options {
            scale: common.scale,
            shards: common.shards,
            baseline: Duration::from_secs(baseline.max(1)),
            data_dir: common.data_dir,
            output: common.output,
            storage,
        })
        .await
        .map(|_| ()),
        Command::Memory { common, workers } => memory_run::run(memory_run::Options {
            scale: common.scale,
            workers,
            shards: common.shards,
            data_dir: common.data_dir,
            output: common.output,
        })
        .await
        .map(|_| ()),
    };
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
