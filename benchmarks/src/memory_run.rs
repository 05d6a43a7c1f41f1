//! `shardfusion-bench memory`: streams `SELECT * FROM lineitem` to a client that counts and
//! drops the batches, and reports the process's peak resident memory while it runs. The
//! coordinator, the workers and the client all live in this process, so the coordinator's own
//! peak is at most the figure reported: a coordinator that buffered the result would show it.

use std::path::PathBuf;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::machine::{Machine, peak_rss_bytes, reset_peak_rss};
use crate::target::Target;
use crate::tpch;

#[derive(Debug, Clone)]
pub struct Options {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub data_dir: Option<PathBuf>,
    pub output: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub rows: u64,
    pub arrow_bytes: u64,
    pub seconds: f64,
    /// Peak RSS of the whole process (coordinator + workers + client) during the query.
    pub peak_rss_bytes: u64,
    /// Whether the peak counter could be reset before the query (else it includes the load).
    pub peak_reset: bool,
}

pub async fn run(options: Options) -> Result<Report, String> {
    let dir = crate::tpch_run::prepare_data(options.scale, options.data_dir.clone())?;
    let lineitem = tpch::TABLES
        .iter()
        .find(|t| t.name == "lineitem")
        .copied()
        .ok_or("no lineitem table")?;
    let target = Target::start(None, options.workers).await?;
    let mut client = target.client().await?;
    let spinner = crate::progress::spinner("loading lineitem");
    tpch::load(&mut client, &dir, options.shards, &[lineitem], &|_| {}).await?;
    spinner.finish_and_clear();

    let peak_reset = reset_peak_rss();
    let started = Instant::now();
    let mut stream = client
        .stream("SELECT * FROM lineitem")
        .await
        .map_err(|s| s.message().to_string())?;
    let (mut rows, mut arrow_bytes) = (0u64, 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| e.to_string())?;
        rows += batch.num_rows() as u64;
        arrow_bytes += batch.get_array_memory_size() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_rss_bytes();
    target.shutdown().await;

    let report = Report {
        scale: options.scale,
        workers: options.workers,
        shards: options.shards,
        rows,
        arrow_bytes,
        seconds,
        peak_rss_bytes: peak,
        peak_reset,
    };
    let markdown = format!(
        "## Memory: SELECT * FROM lineitem (SF{}) streamed to a client\n\n\
         {} rows, {:.0} MiB of Arrow data in {:.1} s. Peak RSS of the whole process \
         (coordinator, {} workers and the client) during the query: {:.0} MiB{}.\n",
        report.scale,
        report.rows,
        report.arrow_bytes as f64 / (1024.0 * 1024.0),
        report.seconds,
        report.workers,
        report.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        if report.peak_reset {
            ""
        } else {
            " (the peak counter could not be reset, so this includes loading)"
        }
    );
    println!("{markdown}");
    let written = crate::report::write(
        &options.output,
        &format!("memory-sf{}", options.scale),
        "memory",
        &Machine::describe(),
        &report,
        &markdown,
    )?;
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(report)
}
