//! `shardfusion-bench router`: single-shard point queries on the distribution key
//! (`SELECT * FROM orders WHERE o_orderkey = k`) from C concurrent Flight SQL clients for a
//! fixed time. Reports queries per second and latency percentiles; every answer is checked
//! (exactly the one order asked for).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::TestClient;
use crate::progress;
use crate::report::{median, percentile};
use crate::target::Target;
use crate::tpch;

#[derive(Debug, Clone)]
pub struct Options {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub clients: usize,
    pub duration: Duration,
    pub data_dir: Option<PathBuf>,
    pub output: PathBuf,
    pub url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub clients: usize,
    pub seconds: f64,
    pub target: String,
    pub queries: u64,
    pub errors: u64,
    pub qps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub async fn run(options: Options) -> Result<Report, String> {
    let dir = crate::tpch_run::prepare_data(options.scale, options.data_dir.clone())?;
    let orders = tpch::TABLES
        .iter()
        .find(|t| t.name == "orders")
        .copied()
        .ok_or("no orders table")?;
    let target = Target::start(options.url.clone(), options.workers).await?;
    let mut client = target.client().await?;
    let has_orders = client.query("SELECT 1 FROM orders LIMIT 1").await.is_ok();
    if !has_orders {
        let spinner = progress::spinner("loading orders");
        tpch::load(&mut client, &dir, options.shards, &[orders], &|_| {}).await?;
        spinner.finish_and_clear();
    }
    let keys = order_keys(&dir).await?;
    if keys.is_empty() {
        return Err("orders is empty".into());
    }
    let keys = std::sync::Arc::new(keys);

    let bar = progress::bar(options.duration.as_secs().max(1), "router");
    let deadline = Instant::now() + options.duration;
    let mut tasks = Vec::new();
    for client_index in 0..options.clients {
        let url = target.url().to_string();
        let keys = std::sync::Arc::clone(&keys);
        tasks.push(tokio::spawn(async move {
            let mut client = TestClient::try_connect(&url).await?;
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (client_index as u64 + 1);
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let key = keys[(state % keys.len() as u64) as usize];
                let sql = format!("SELECT * FROM orders WHERE o_orderkey = {key}");
                let started = Instant::now();
                match client.query(&sql).await {
                    Ok(batches) if batches.iter().map(|b| b.num_rows()).sum::<usize>() == 1 => {
                        latencies.push(started.elapsed().as_secs_f64() * 1000.0)
                    }
                    _ => errors += 1,
                }
            }
            Ok::<_, String>((latencies, errors))
        }));
    }
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
            }
        })
    };
    let started = Instant::now();
    let (mut latencies, mut errors) = (Vec::new(), 0u64);
    for task in tasks {
        let (l, e) = task.await.map_err(|e| e.to_string())??;
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    let described = target.describe();
    target.shutdown().await;

    let report = Report {
        scale: options.scale,
        workers: options.workers,
        shards: options.shards,
        clients: options.clients,
        seconds,
        target: described,
        queries: latencies.len() as u64,
        errors,
        qps: latencies.len() as f64 / seconds,
        p50_ms: median(&latencies),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.iter().copied().fold(0.0, f64::max),
    };
    let markdown = format!(
        "## Router: point queries on orders by o_orderkey (SF{}, {} shards, {})\n\n\
         | clients | seconds | queries | errors | QPS | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {} | {:.1} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
        report.scale,
        report.shards,
        report.target,
        report.clients,
        report.seconds,
        report.queries,
        report.errors,
        report.qps,
        report.p50_ms,
        report.p95_ms,
        report.p99_ms,
        report.max_ms
    );
    crate::report::publish(&options.output, "router", options.scale, &report, &markdown)?;
    if report.errors > 0 {
        return Err(format!(
            "{} point queries failed or returned a wrong row count",
            report.errors
        ));
    }
    Ok(report)
}

/// Up to 100,000 order keys from the generated file (keys are sparse in TPC-H).
async fn order_keys(dir: &std::path::Path) -> Result<Vec<i64>, String> {
    let ctx = crate::compare::single_node_session();
    let orders = tpch::TABLES
        .iter()
        .find(|t| t.name == "orders")
        .ok_or("no orders table")?;
    ctx.register_parquet(
        "orders",
        orders.parquet_path(dir).to_string_lossy().as_ref(),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let batches = ctx
        .sql("SELECT o_orderkey FROM orders LIMIT 100000")
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for batch in batches {
        if let Some(column) = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
        {
            keys.extend(column.values().iter().copied());
        }
    }
    Ok(keys)
}
