//! `shardfusion-bench`: the benchmark runner. Subcommands live in their own modules; this file
//! only parses arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "shardfusion-bench",
    about = "Benchmarks ShardFusion against single-node DataFusion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// TPC-H: generate, load with the standard distribution scheme, run, verify, compare.
    Tpch {
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long, default_value_t = 16)]
        shards: usize,
        #[arg(long, default_value_t = 3)]
        iterations: usize,
        /// Comma-separated query numbers (default: all 22).
        #[arg(long, value_delimiter = ',')]
        queries: Vec<usize>,
        /// Where the generated Parquet files are cached.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where the JSON and Markdown reports go.
        #[arg(long, default_value = "benchmark-results")]
        output: PathBuf,
    },
}

#[tokio::main]
async fn main() {
    let result = match Cli::parse().command {
        Command::Tpch {
            scale,
            workers,
            shards,
            iterations,
            queries,
            data_dir,
            output,
        } => {
            let options = shardfusion_benchmarks::tpch_run::Options {
                scale,
                workers,
                shards,
                iterations: iterations.max(1),
                queries: if queries.is_empty() {
                    (1..=22).collect()
                } else {
                    queries
                },
                data_dir,
                output,
            };
            shardfusion_benchmarks::tpch_run::run(options).await
        }
    };
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
