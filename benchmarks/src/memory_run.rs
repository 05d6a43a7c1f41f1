//! `shardfusion-bench memory`: streams `SELECT * FROM lineitem` to a client that counts and
//! drops the batches, and reports the coordinator's peak resident memory while it runs.
//!
//! The coordinator and workers run as separate `shardfusion` processes (the binary next to this
//! one, or `$SHARDFUSION_BIN`), so the coordinator's own peak (VmHWM, reset before the query)
//! is measured. Without the binary, an embedded cluster is used and the figure is the whole
//! process's (coordinator, workers and client together), an upper bound.

use std::path::PathBuf;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::client::TestClient;
use crate::machine::{peak_rss_bytes, reset_peak_rss};
use crate::processes::{ProcessCluster, peak_rss_of, reset_peak_rss_of};
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
    /// Peak RSS during the query of what `measured` names.
    pub peak_rss_bytes: u64,
    /// Its RSS when the query started, after the load (what the allocator kept of it).
    pub rss_before_query_bytes: u64,
    /// "coordinator process" or "whole embedded cluster process".
    pub measured: String,
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
    let processes = match crate::processes::shardfusion_binary() {
        Some(binary) => Some(ProcessCluster::start(&binary, options.workers).await?),
        None => None,
    };
    let embedded = match &processes {
        Some(_) => None,
        None => Some(Target::start(None, options.workers).await?),
    };
    let url = match (&processes, &embedded) {
        (Some(p), _) => p.url.clone(),
        (None, Some(t)) => t.url().to_string(),
        (None, None) => return Err("no cluster".into()),
    };
    let mut client = TestClient::try_connect(&url).await?;
    let spinner = crate::progress::spinner("loading lineitem");
    tpch::load(&mut client, &dir, options.shards, &[lineitem], &|_| {}).await?;
    spinner.finish_and_clear();

    let coordinator = processes.as_ref().map(ProcessCluster::coordinator_pid);
    let peak_reset = match coordinator {
        Some(pid) => reset_peak_rss_of(pid),
        None => reset_peak_rss(),
    };
    let rss_before_query = match coordinator {
        Some(pid) => crate::machine::kib_field(&format!("/proc/{pid}/status"), "VmRSS") * 1024,
        None => crate::machine::kib_field("/proc/self/status", "VmRSS") * 1024,
    };
    let started = Instant::now();
    let mut stream = client
        .stream("SELECT * FROM lineitem")
        .await
        .map_err(|s| s.message().to_string())?;
    let (mut rows, mut arrow_bytes) = (0u64, 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| e.to_string())?;
        rows += batch.num_rows() as u64;
        for column in batch.columns() {
            arrow_bytes += column.to_data().get_slice_memory_size().unwrap_or(0) as u64;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = match coordinator {
        Some(pid) => peak_rss_of(pid),
        None => peak_rss_bytes(),
    };
    let measured = if processes.is_some() {
        "coordinator process"
    } else {
        "whole embedded cluster process (coordinator, workers and client)"
    };
    drop(processes);
    if let Some(target) = embedded {
        target.shutdown().await;
    }

    let report = Report {
        scale: options.scale,
        workers: options.workers,
        shards: options.shards,
        rows,
        arrow_bytes,
        seconds,
        peak_rss_bytes: peak,
        rss_before_query_bytes: rss_before_query,
        measured: measured.to_string(),
        peak_reset,
    };
    let markdown = format!(
        "## Memory: SELECT * FROM lineitem (SF{}) streamed to a client\n\n\
         {} rows, {:.0} MiB of Arrow data in {:.1} s ({} workers). Peak RSS of the {} during \
         the query: {:.0} MiB{} ({:.0} MiB when it started, after the load).\n",
        report.scale,
        report.rows,
        report.arrow_bytes as f64 / (1024.0 * 1024.0),
        report.seconds,
        report.workers,
        report.measured,
        report.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        if report.peak_reset {
            ""
        } else {
            " (the peak counter could not be reset, so this includes loading)"
        },
        report.rss_before_query_bytes as f64 / (1024.0 * 1024.0),
    );
    crate::report::publish(&options.output, "memory", options.scale, &report, &markdown)?;
    Ok(report)
}
