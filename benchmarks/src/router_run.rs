//! `shardfusion-bench router`: the statements of a multi-tenant application's pages, each
//! from concurrent Flight SQL clients for a fixed time, every answer checked:
//! - point queries on the distribution key (`SELECT * FROM orders WHERE o_orderkey = k`) from
//!   C clients and from one;
//! - a per-tenant dashboard query (co-located `orders ⋈ lineitem` grouped, for one order key)
//!   from C clients, checked against single-node DataFusion's answers for the same keys;
//! - `SELECT 1` from one client: the fixed cost of a statement.
//!
//! Each workload reports queries per second, latency percentiles, and where the time went:
//! the server's parse, plan, dispatch and worker times per statement (from
//! `shardfusion_stat_statements`, measured before and after the workload) and what remains of
//! the client's mean latency (transfer, the client, the coordinator's streaming).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::TestClient;
use crate::compare::rows;
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
    /// Seconds each workload runs.
    pub duration: Duration,
    pub data_dir: Option<PathBuf>,
    pub output: PathBuf,
    pub url: Option<String>,
}

/// One workload's measurements.
#[derive(Debug, Serialize)]
pub struct WorkloadReport {
    pub workload: String,
    pub clients: usize,
    pub seconds: f64,
    pub queries: u64,
    pub errors: u64,
    pub qps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    /// Per statement, in the server: parsing, planning, dispatching tasks, on the workers.
    pub parse_ms: f64,
    pub plan_ms: f64,
    pub dispatch_ms: f64,
    pub worker_ms: f64,
    /// The coordinator's own mean elapsed time per statement (parse to the last row).
    pub server_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub target: String,
    pub workloads: Vec<WorkloadReport>,
}

/// A statement a client may send, with the rows it must answer.
struct Probe {
    sql: String,
    expected: Vec<String>,
}

/// Statements of one kind, sent in random order.
struct Workload {
    name: &'static str,
    clients: usize,
    probes: Arc<Vec<Probe>>,
    /// A `LIKE` pattern matching the statement's normalized text in
    /// `shardfusion_stat_statements`, and no other statement's.
    normalized: &'static str,
}

pub async fn run(options: Options) -> Result<Report, String> {
    let dir = crate::tpch_run::prepare_data(options.scale, options.data_dir.clone())?;
    let tables: Vec<tpch::Table> = tpch::TABLES
        .iter()
        .filter(|t| t.name == "orders" || t.name == "lineitem")
        .copied()
        .collect();
    let target = Target::start(options.url.clone(), options.workers).await?;
    let mut client = target.client().await?;
    let loaded = client.query("SELECT 1 FROM orders LIMIT 1").await.is_ok()
        && client.query("SELECT 1 FROM lineitem LIMIT 1").await.is_ok();
    if !loaded {
        let spinner = progress::spinner("loading orders and lineitem");
        tpch::load(&mut client, &dir, options.shards, &tables, &|_| {}).await?;
        spinner.finish_and_clear();
    }
    let keys = order_keys(&dir).await?;
    if keys.is_empty() {
        return Err("orders is empty".into());
    }
    let points = Arc::new(point_probes(&keys));
    let workloads = [
        Workload {
            name: "point query",
            clients: options.clients,
            probes: Arc::clone(&points),
            normalized: "SELECT * FROM orders WHERE o_orderkey = %",
        },
        Workload {
            name: "point query",
            clients: 1,
            probes: points,
            normalized: "SELECT * FROM orders WHERE o_orderkey = %",
        },
        Workload {
            name: "dashboard (orders ⋈ lineitem, GROUP BY, one key)",
            clients: options.clients,
            probes: Arc::new(dashboard_probes(&dir, &keys[..keys.len().min(500)]).await?),
            normalized: "SELECT l_returnflag, count(*) AS items%",
        },
        Workload {
            name: "SELECT 1",
            clients: 1,
            probes: Arc::new(vec![Probe {
                sql: "SELECT 1".into(),
                expected: vec!["1".into()],
            }]),
            normalized: "SELECT $1",
        },
    ];
    let mut reports = Vec::new();
    for workload in &workloads {
        reports.push(run_workload(&target, &mut client, workload, options.duration).await?);
    }
    let described = target.describe();
    target.shutdown().await;

    let report = Report {
        scale: options.scale,
        workers: options.workers,
        shards: options.shards,
        target: described,
        workloads: reports,
    };
    let mut markdown = format!(
        "## Router: a multi-tenant application's statements (SF{}, {} shards, {})\n\n\
         | workload | clients | queries | errors | QPS | p50 (ms) | p95 (ms) | p99 (ms) | mean (ms) \
         | parse | plan | dispatch | worker | server | rest |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        report.scale, report.shards, report.target
    );
    for w in &report.workloads {
        markdown.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            w.workload,
            w.clients,
            w.queries,
            w.errors,
            w.qps,
            w.p50_ms,
            w.p95_ms,
            w.p99_ms,
            w.mean_ms,
            w.parse_ms,
            w.plan_ms,
            w.dispatch_ms,
            w.worker_ms,
            w.server_ms,
            w.mean_ms - w.server_ms,
        ));
    }
    markdown.push_str(
        "\nPhase columns are means per statement in ms, in the server: parse, plan (to the \
         distributed plan), dispatch (task start to the worker's answer streaming, summed over \
         tasks), worker (the workers' own task time, summed), server (the coordinator's whole \
         statement, parse to last row); rest = mean − server: the Flight SQL round trips and \
         the client.\n",
    );
    crate::report::publish(&options.output, "router", options.scale, &report, &markdown)?;
    let errors: u64 = report.workloads.iter().map(|w| w.errors).sum();
    if errors > 0 {
        return Err(format!("{errors} statements failed or answered wrongly"));
    }
    Ok(report)
}

fn point_probes(keys: &[i64]) -> Vec<Probe> {
    keys.iter()
        .map(|key| Probe {
            sql: format!("SELECT * FROM orders WHERE o_orderkey = {key}"),
            expected: Vec::new(),
        })
        .collect()
}

/// The dashboard of the order keys `filter` selects, its groups keyed by `keys` (the return
/// flag, or the order key and the return flag).
fn dashboard(keys: &str, filter: &str) -> String {
    format!(
        "SELECT {keys}, count(*) AS items, sum(l_extendedprice * (1 - l_discount)) AS revenue \
         FROM orders JOIN lineitem ON o_orderkey = l_orderkey \
         WHERE {filter} GROUP BY {keys} ORDER BY {keys}"
    )
}

/// The dashboard of one order: what a client sends.
fn dashboard_sql(key: i64) -> String {
    dashboard("l_returnflag", &format!("o_orderkey = {key}"))
}

/// Dashboard statements for `keys`, with single-node DataFusion's answers (one query over
/// all keys, split by key).
async fn dashboard_probes(dir: &std::path::Path, keys: &[i64]) -> Result<Vec<Probe>, String> {
    let ctx = crate::compare::single_node_session();
    for name in ["orders", "lineitem"] {
        let table = tpch::TABLES
            .iter()
            .find(|t| t.name == name)
            .ok_or("no such table")?;
        ctx.register_parquet(
            name,
            table.parquet_path(dir).to_string_lossy().as_ref(),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    let list: Vec<String> = keys.iter().map(i64::to_string).collect();
    let all = dashboard(
        "o_orderkey, l_returnflag",
        &format!("o_orderkey IN ({})", list.join(", ")),
    );
    let answer = crate::compare::single_node_answer(&ctx, &all).await;
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows(&answer) {
        if let Some((key, rest)) = row.split_once(" | ") {
            by_key
                .entry(key.to_string())
                .or_default()
                .push(rest.to_string());
        }
    }
    Ok(keys
        .iter()
        .map(|key| Probe {
            sql: dashboard_sql(*key),
            expected: by_key.remove(&key.to_string()).unwrap_or_default(),
        })
        .collect())
}

/// Totals of one normalized statement in `shardfusion_stat_statements`: calls, then the
/// elapsed, parse, plan, dispatch and worker milliseconds.
async fn statement_totals(client: &mut TestClient, pattern: &str) -> Result<[f64; 6], String> {
    let sql = format!(
        "SELECT calls, mean_elapsed_ms * calls, total_parse_time, total_plan_time, \
         total_dispatch_time, total_worker_time FROM shardfusion_stat_statements \
         WHERE query LIKE '{}'",
        pattern.replace('\'', "''")
    );
    let batches = client
        .query(&sql)
        .await
        .map_err(|e| e.message().to_string())?;
    let mut totals = [0.0; 6];
    if let Some(row) = rows(&batches).first() {
        for (total, value) in totals.iter_mut().zip(row.split(" | ")) {
            *total = value.trim().parse().unwrap_or(0.0);
        }
    }
    Ok(totals)
}

async fn run_workload(
    target: &Target,
    client: &mut TestClient,
    workload: &Workload,
    duration: Duration,
) -> Result<WorkloadReport, String> {
    let before = statement_totals(client, workload.normalized).await?;
    let bar = progress::bar(duration.as_secs().max(1), workload.name);
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for client_index in 0..workload.clients {
        let url = target.url().to_string();
        let probes = Arc::clone(&workload.probes);
        tasks.push(tokio::spawn(async move {
            let mut client = TestClient::try_connect(&url).await?;
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (client_index as u64 + 1);
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let probe = &probes[(state % probes.len() as u64) as usize];
                let started = Instant::now();
                let answer = client.query(&probe.sql).await;
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                match answer {
                    Ok(batches) if answers(&probe.expected, &batches) => latencies.push(elapsed),
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
    let after = statement_totals(client, workload.normalized).await?;
    let calls = (after[0] - before[0]).max(1.0);
    let per_call = |i: usize| (after[i] - before[i]) / calls;
    Ok(WorkloadReport {
        workload: workload.name.to_string(),
        clients: workload.clients,
        seconds,
        queries: latencies.len() as u64,
        errors,
        qps: latencies.len() as f64 / seconds,
        p50_ms: median(&latencies),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        mean_ms: latencies.iter().sum::<f64>() / latencies.len().max(1) as f64,
        server_ms: per_call(1),
        parse_ms: per_call(2),
        plan_ms: per_call(3),
        dispatch_ms: per_call(4),
        worker_ms: per_call(5),
    })
}

/// Whether `batches` answer as expected: the expected rows, or (when none are given, for a
/// point query) exactly one row.
fn answers(expected: &[String], batches: &[datafusion::arrow::array::RecordBatch]) -> bool {
    if expected.is_empty() {
        return batches.iter().map(|b| b.num_rows()).sum::<usize>() == 1;
    }
    rows(batches) == expected
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
