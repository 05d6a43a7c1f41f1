//! `shardfusion-bench rebalance`: TPC-H loaded on 2 worker processes, a third worker joins,
//! and `rebalance_table_shards()` spreads the shard groups while a client keeps querying.
//!
//! Reported: the rebalance's wall time; the bytes copied worker to worker (the moves' own
//! count, `get_rebalance_progress()`); the bytes that passed through the coordinator process
//! meanwhile (its `read`/`write` system calls, `/proc/<pid>/io` `rchar + wchar`: sockets, the
//! catalog and the concurrent queries' answers — an upper bound on what a move relayed,
//! whose target is zero); and the p50/p99 latency of the query loop before and during the
//! rebalance. Every answer of the loop is checked.
//!
//! With `--storage s3` every node keeps its shard files in S3 (a moto server on loopback,
//! started here): a move then copies nothing, and the time is the metadata switch plus the
//! receiving worker reading the moved files' footers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::TestClient;
use crate::processes::{ProcessCluster, ProcessClusterOptions, shardfusion_binary};
use crate::s3_server::S3Server;
use crate::tpch;

#[derive(Debug, Clone)]
pub struct Options {
    pub scale: f64,
    pub shards: usize,
    /// Seconds of the query loop before the rebalance.
    pub baseline: Duration,
    pub data_dir: Option<PathBuf>,
    pub output: PathBuf,
    pub storage: Storage,
}

/// Where the cluster keeps its shard files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Storage {
    /// Each worker's data directory.
    Local,
    /// One S3 bucket shared by every node (a moto server on loopback).
    S3,
}

/// Latency of the query loop over one period.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub queries: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: f64,
    pub shards: usize,
    pub storage: String,
    pub rebalance_seconds: f64,
    pub moves: i64,
    pub bytes_copied_worker_to_worker: i64,
    pub coordinator_io_bytes: u64,
    pub before: Latency,
    pub during: Latency,
    pub loop_errors: usize,
}

/// The loop's query: TPC-H Q6, answered by every worker.
const LOOP_QUERY: &str = "SELECT CAST(sum(l_extendedprice * l_discount) AS DOUBLE) FROM lineitem \
     WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' \
     AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24";

fn io_bytes(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| *key == "rchar" || *key == "wchar")
        .filter_map(|(_, value)| value.trim().parse::<u64>().ok())
        .sum()
}

fn latency(mut samples: Vec<f64>) -> Latency {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Latency {
        queries: samples.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

/// Runs the loop until `stop` is set; returns its latencies and how many answers were wrong
/// or failed.
async fn query_loop(
    url: String,
    expected: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(Vec<f64>, usize), String> {
    let mut client = TestClient::try_connect(&url).await?;
    let (mut samples, mut errors) = (Vec::new(), 0);
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let started = Instant::now();
        let answer = client.query(LOOP_QUERY).await;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        match answer {
            Ok(batches) if crate::compare::first_value(&batches) == expected => {}
            Ok(batches) => {
                errors += 1;
                eprintln!(
                    "wrong answer during the rebalance: {}",
                    crate::compare::first_value(&batches)
                );
            }
            Err(status) => {
                errors += 1;
                eprintln!("query failed during the rebalance: {}", status.message());
            }
        }
    }
    Ok((samples, errors))
}

pub async fn run(options: Options) -> Result<Report, String> {
    let dir = crate::tpch_run::prepare_data(options.scale, options.data_dir.clone())?;
    let binary = shardfusion_binary().ok_or(
        "the rebalance benchmark runs separate processes: build the shardfusion binary next to \
         this one (cargo build --release) or set SHARDFUSION_BIN",
    )?;
    let s3 = match options.storage {
        Storage::Local => None,
        Storage::S3 => Some(S3Server::start("shardfusion-bench")?),
    };
    let cluster_options = ProcessClusterOptions {
        env: s3.as_ref().map(S3Server::env).unwrap_or_default(),
        storage: s3.as_ref().map(|s3| s3.storage_url("rebalance")),
        ..Default::default()
    };
    let mut cluster = ProcessCluster::start_with(&binary, 2, cluster_options).await?;
    let mut client = TestClient::try_connect(&cluster.url).await?;
    let spinner = crate::progress::spinner("loading TPC-H on 2 workers");
    tpch::load(&mut client, &dir, options.shards, &tpch::TABLES, &|_| {}).await?;
    spinner.finish_and_clear();
    let expected = crate::compare::first_value(
        &client
            .query(LOOP_QUERY)
            .await
            .map_err(|s| s.message().to_string())?,
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let before = tokio::spawn(query_loop(
        cluster.url.clone(),
        expected.clone(),
        std::sync::Arc::clone(&stop),
    ));
    tokio::time::sleep(options.baseline).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let (before, mut errors) = before.await.map_err(|e| e.to_string())??;

    cluster.add_worker()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while crate::compare::first_value(
        &client
            .query("SELECT count(*) FROM pg_dist_node WHERE isactive")
            .await
            .map_err(|s| s.message().to_string())?,
    ) != "3"
    {
        if Instant::now() > deadline {
            return Err("the third worker did not join within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let during = tokio::spawn(query_loop(
        cluster.url.clone(),
        expected,
        std::sync::Arc::clone(&stop),
    ));
    let coordinator = cluster.coordinator_pid();
    let io_before = io_bytes(coordinator);
    let started = Instant::now();
    client
        .query("SELECT rebalance_table_shards()")
        .await
        .map_err(|s| format!("rebalance_table_shards: {}", s.message()))?;
    let rebalance_seconds = started.elapsed().as_secs_f64();
    let coordinator_io_bytes = io_bytes(coordinator).saturating_sub(io_before);
    stop.store(true, std::sync::atomic::Ordering::Release);
    let (during, during_errors) = during.await.map_err(|e| e.to_string())??;
    errors += during_errors;
    let moved = client
        .query(
            "SELECT count(*), CAST(sum(bytes_copied) AS BIGINT) FROM get_rebalance_progress() \
             WHERE operation_type = 'move' AND progress = 2",
        )
        .await
        .map_err(|s| s.message().to_string())?;
    let (moves, bytes) = crate::compare::first_two_ints(&moved);
    drop(cluster);
    drop(s3);

    let report = Report {
        scale: options.scale,
        shards: options.shards,
        storage: match options.storage {
            Storage::Local => "local disk".into(),
            Storage::S3 => "S3 (moto server on loopback)".into(),
        },
        rebalance_seconds,
        moves,
        bytes_copied_worker_to_worker: bytes,
        coordinator_io_bytes,
        before: latency(before),
        during: latency(during),
        loop_errors: errors,
    };
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let markdown = format!(
        "## Rebalance: TPC-H SF{} ({} shards per table) from 2 to 3 workers, {}\n\n\
         | | value |\n|---|---|\n\
         | rebalance_table_shards() | {:.1} s |\n\
         | shard group moves | {} |\n\
         | bytes copied worker to worker | {:.1} MiB |\n\
         | coordinator process I/O meanwhile (all sockets, catalog, the loop's answers) | {:.2} MiB |\n\
         | Q6 loop before: queries, p50, p99 | {}, {:.1} ms, {:.1} ms |\n\
         | Q6 loop during: queries, p50, p99 | {}, {:.1} ms, {:.1} ms |\n\
         | loop errors or wrong answers | {} |\n",
        report.scale,
        report.shards,
        report.storage,
        report.rebalance_seconds,
        report.moves,
        mib(report.bytes_copied_worker_to_worker as f64),
        mib(report.coordinator_io_bytes as f64),
        report.before.queries,
        report.before.p50_ms,
        report.before.p99_ms,
        report.during.queries,
        report.during.p50_ms,
        report.during.p99_ms,
        report.loop_errors,
    );
    crate::report::publish(
        &options.output,
        match options.storage {
            Storage::Local => "rebalance",
            Storage::S3 => "rebalance-s3",
        },
        options.scale,
        &report,
        &markdown,
    )?;
    if report.loop_errors > 0 {
        return Err(format!(
            "{} queries failed or answered wrongly during the rebalance",
            report.loop_errors
        ));
    }
    Ok(report)
}
