//! `shardfusion-bench tpch`: TPC-H on an embedded cluster against single-node DataFusion over
//! the same Parquet files, in one run.
//!
//! Every query is first run once on both engines and the answers compared; a query whose
//! answer differs is reported as wrong and never timed. Then each engine runs it `iterations`
//! times, alternating, and the medians are compared. Rows and Flight bytes shipped from the
//! workers come from `shardfusion_stat_statements`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde::Serialize;

use crate::client::TestClient;
use crate::cluster::TestCluster;
use crate::compare::same;
use crate::tpch;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub iterations: usize,
    pub queries: Vec<usize>,
    pub data_dir: Option<PathBuf>,
    pub output: PathBuf,
}

/// One query's measurements, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub query: usize,
    pub correct: bool,
    pub difference: Option<String>,
    pub shardfusion_ms: Vec<f64>,
    pub datafusion_ms: Vec<f64>,
    pub rows: usize,
    pub rows_shipped: i64,
    pub bytes_shipped: i64,
}

#[derive(Debug, Serialize)]
struct Report {
    benchmark: &'static str,
    scale: f64,
    workers: usize,
    shards: usize,
    iterations: usize,
    cores: usize,
    git_commit: String,
    date: String,
    load_seconds: f64,
    queries: Vec<QueryResult>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs the TPC-H benchmark and prints the per-query table.
pub async fn run(options: Options) -> Result<(), String> {
    let data_dir = options.data_dir.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".cache/shardfusion")
            .join(format!("tpch-sf{}", options.scale))
    });
    eprintln!(
        "generating TPC-H SF{} in {} (cached)...",
        options.scale,
        data_dir.display()
    );
    let started = Instant::now();
    tpch::generate(options.scale, &data_dir).map_err(|e| e.to_string())?;
    eprintln!("  data ready in {:.1} s", started.elapsed().as_secs_f64());

    let cluster = TestCluster::start(options.workers).await;
    let mut client = cluster.client().await;
    eprintln!(
        "loading into {} workers with {} shards per distributed table...",
        options.workers, options.shards
    );
    let started = Instant::now();
    for table in tpch::TABLES {
        let path = table.parquet_path(&data_dir);
        for sql in [
            table.ddl.to_string(),
            table.distribute_sql(options.shards),
            format!(
                "COPY {} FROM '{}' WITH (FORMAT parquet)",
                table.name,
                path.display()
            ),
        ] {
            client
                .query(&sql)
                .await
                .map_err(|s| format!("{sql}: {}", s.message()))?;
        }
    }
    let load_seconds = started.elapsed().as_secs_f64();
    eprintln!("  loaded in {load_seconds:.1} s");

    let single = crate::compare::single_node_session();
    for table in tpch::TABLES {
        let path = table.parquet_path(&data_dir);
        single
            .register_parquet(
                table.name,
                path.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
    }

    let mut results = Vec::new();
    for &number in &options.queries {
        let sql = tpch::query(number).ok_or_else(|| format!("there is no TPC-H query {number}"))?;
        eprint!("Q{number:02} ");
        results.push(measure(&mut client, &single, number, sql, options.iterations).await?);
        eprintln!("done");
    }
    cluster.shutdown().await;

    print_table(&results);
    let report = Report {
        benchmark: "tpch",
        scale: options.scale,
        workers: options.workers,
        shards: options.shards,
        iterations: options.iterations,
        cores: cores(),
        git_commit: git_commit(),
        date: chrono::Utc::now().to_rfc3339(),
        load_seconds,
        queries: results,
    };
    std::fs::create_dir_all(&options.output).map_err(|e| e.to_string())?;
    let path = options
        .output
        .join(format!("tpch-sf{}.json", options.scale));
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

async fn single_node(
    single: &SessionContext,
    sql: &str,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, String> {
    let frame = single.sql(sql).await.map_err(|e| e.to_string())?;
    frame.collect().await.map_err(|e| e.to_string())
}

async fn measure(
    client: &mut TestClient,
    single: &SessionContext,
    number: usize,
    sql: &str,
    iterations: usize,
) -> Result<QueryResult, String> {
    let actual = client
        .query(sql)
        .await
        .map_err(|s| format!("Q{number} failed on ShardFusion: {}", s.message()))?;
    let expected = single_node(single, sql).await?;
    let rows = expected.iter().map(|b| b.num_rows()).sum();
    let mut result = QueryResult {
        query: number,
        correct: true,
        difference: None,
        shardfusion_ms: Vec::new(),
        datafusion_ms: Vec::new(),
        rows,
        rows_shipped: 0,
        bytes_shipped: 0,
    };
    if let Err(difference) = same(&actual, &expected, true) {
        result.correct = false;
        result.difference = Some(difference);
        return Ok(result);
    }
    for _ in 0..iterations {
        let started = Instant::now();
        client
            .query(sql)
            .await
            .map_err(|s| format!("Q{number} failed on ShardFusion: {}", s.message()))?;
        result.shardfusion_ms.push(millis(started.elapsed()));
        let started = Instant::now();
        single_node(single, sql).await?;
        result.datafusion_ms.push(millis(started.elapsed()));
    }
    let stats = client
        .query(
            "SELECT rows_received, bytes_received FROM shardfusion_stat_statements \
             WHERE NOT starts_with(query, 'SELECT rows_received') ORDER BY started_at DESC LIMIT 1",
        )
        .await
        .map_err(|s| s.message().to_string())?;
    if let Some(batch) = stats.first().filter(|b| b.num_rows() > 0) {
        let value = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .map_or(0, |a| a.value(0))
        };
        result.rows_shipped = value(0);
        result.bytes_shipped = value(1);
    }
    Ok(result)
}

fn print_table(results: &[QueryResult]) {
    println!(
        "| query | ShardFusion median (ms) | min | max | DataFusion median (ms) | ratio | rows | rows shipped | bytes shipped |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let (mut sum_sf, mut sum_df, mut log_sum, mut counted) = (0.0, 0.0, 0.0, 0usize);
    for r in results {
        if !r.correct {
            println!(
                "| Q{} | WRONG ANSWER: {} | | | | | {} | | |",
                r.query,
                r.difference.clone().unwrap_or_default(),
                r.rows
            );
            continue;
        }
        let sf = median(&r.shardfusion_ms);
        let df = median(&r.datafusion_ms);
        let min = r
            .shardfusion_ms
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let max = r.shardfusion_ms.iter().copied().fold(0.0, f64::max);
        println!(
            "| Q{} | {sf:.1} | {min:.1} | {max:.1} | {df:.1} | {:.2} | {} | {} | {} |",
            r.query,
            sf / df,
            r.rows,
            r.rows_shipped,
            r.bytes_shipped
        );
        sum_sf += sf;
        sum_df += df;
        log_sum += (sf / df).ln();
        counted += 1;
    }
    if counted > 0 {
        println!(
            "| **sum** | **{sum_sf:.1}** | | | **{sum_df:.1}** | **{:.2}** | | | |",
            sum_sf / sum_df
        );
        println!(
            "\ngeometric mean of ratios: {:.2}; sum of medians: ShardFusion {:.2} s, DataFusion {:.2} s",
            (log_sum / counted as f64).exp(),
            sum_sf / 1000.0,
            sum_df / 1000.0
        );
    }
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
