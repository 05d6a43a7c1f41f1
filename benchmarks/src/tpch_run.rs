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
use crate::compare::same;
use crate::progress;
use crate::report::median;
use crate::target::Target;
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
    /// An existing cluster to measure instead of an embedded one.
    pub url: Option<String>,
    /// Drop and load the TPC-H tables again even if the cluster has them.
    pub reload: bool,
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

impl QueryResult {
    pub fn shardfusion_median(&self) -> f64 {
        median(&self.shardfusion_ms)
    }

    pub fn datafusion_median(&self) -> f64 {
        median(&self.datafusion_ms)
    }
}

/// The whole run, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub iterations: usize,
    pub target: String,
    pub load_seconds: Option<f64>,
    pub queries: Vec<QueryResult>,
    pub shardfusion_sum_ms: f64,
    pub datafusion_sum_ms: f64,
    pub ratio: f64,
    pub geometric_mean_ratio: f64,
    pub all_correct: bool,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Generates (or finds) the data at `scale`, with a spinner.
pub fn prepare_data(scale: f64, data_dir: Option<PathBuf>) -> Result<PathBuf, String> {
    let dir = data_dir.unwrap_or_else(|| tpch::default_data_dir(scale));
    let spinner = progress::spinner(&format!("TPC-H SF{scale} data in {}", dir.display()));
    tpch::generate(scale, &dir).map_err(|e| e.to_string())?;
    spinner.finish_with_message(format!("TPC-H SF{scale} data ready in {}", dir.display()));
    Ok(dir)
}

/// Loads the TPC-H tables onto the target with a progress bar (skipped on an external
/// cluster that already has them, unless `reload`); returns the load time if it loaded.
pub async fn load_target(
    client: &mut TestClient,
    dir: &std::path::Path,
    shards: usize,
    external: bool,
    reload: bool,
) -> Result<Option<f64>, String> {
    if external && tpch::loaded(client).await? && !reload {
        eprintln!("the cluster already has the TPC-H tables; using them (--reload loads again)");
        return Ok(None);
    }
    if external {
        tpch::drop_tables(client).await?;
    }
    let bar = progress::bar(tpch::TABLES.len() as u64, "loading");
    let seconds = tpch::load(client, dir, shards, &tpch::TABLES, &|name| {
        bar.set_message(name.to_string());
        bar.inc(1);
    })
    .await?;
    bar.finish_with_message(format!("loaded in {seconds:.1} s"));
    Ok(Some(seconds))
}

/// A single-node DataFusion session over the TPC-H files in `dir`.
pub async fn single_node_tpch(dir: &std::path::Path) -> Result<SessionContext, String> {
    let single = crate::compare::single_node_session();
    for table in tpch::TABLES {
        let path = table.parquet_path(dir);
        single
            .register_parquet(
                table.name,
                path.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(single)
}

/// Verifies and times each of `queries` (see the module docs), with a progress bar.
pub async fn run_queries(
    client: &mut TestClient,
    single: &SessionContext,
    queries: &[usize],
    iterations: usize,
) -> Result<Vec<QueryResult>, String> {
    let bar = progress::bar(queries.len() as u64, "queries");
    let mut results = Vec::new();
    for &number in queries {
        let sql = tpch::query(number).ok_or_else(|| format!("there is no TPC-H query {number}"))?;
        bar.set_message(format!("Q{number}"));
        results.push(measure(client, single, number, sql, iterations).await?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(results)
}

/// Runs the TPC-H benchmark: prints the per-query table and writes JSON, Markdown and a chart.
pub async fn run(options: Options) -> Result<Report, String> {
    let dir = prepare_data(options.scale, options.data_dir.clone())?;
    let target = Target::start(options.url.clone(), options.workers).await?;
    let mut client = target.client().await?;
    let external = matches!(target, Target::External(_));
    let load_seconds =
        load_target(&mut client, &dir, options.shards, external, options.reload).await?;
    let single = single_node_tpch(&dir).await?;
    let results = run_queries(&mut client, &single, &options.queries, options.iterations).await?;
    let described = target.describe();
    target.shutdown().await;

    let report = summarize(&options, described, load_seconds, results);
    let markdown = markdown(&options, &report);
    let name = crate::report::publish(&options.output, "tpch", options.scale, &report, &markdown)?;
    let chart_path = options.output.join(format!("{name}.svg"));
    let rows: Vec<(String, f64, f64)> = report
        .queries
        .iter()
        .filter(|q| q.correct)
        .map(|q| {
            (
                format!("Q{}", q.query),
                q.shardfusion_median(),
                q.datafusion_median(),
            )
        })
        .collect();
    crate::chart::query_times(
        &chart_path,
        &format!(
            "TPC-H SF{}: {} workers, {} shards (median ms)",
            options.scale, options.workers, options.shards
        ),
        &rows,
    )?;
    eprintln!("wrote {}", chart_path.display());
    Ok(report)
}

fn summarize(
    options: &Options,
    target: String,
    load_seconds: Option<f64>,
    queries: Vec<QueryResult>,
) -> Report {
    let correct: Vec<&QueryResult> = queries.iter().filter(|q| q.correct).collect();
    let shardfusion_sum_ms: f64 = correct.iter().map(|q| q.shardfusion_median()).sum();
    let datafusion_sum_ms: f64 = correct.iter().map(|q| q.datafusion_median()).sum();
    let log_sum: f64 = correct
        .iter()
        .map(|q| (q.shardfusion_median() / q.datafusion_median()).ln())
        .sum();
    Report {
        scale: options.scale,
        workers: options.workers,
        shards: options.shards,
        iterations: options.iterations,
        target,
        load_seconds,
        all_correct: correct.len() == queries.len(),
        shardfusion_sum_ms,
        datafusion_sum_ms,
        ratio: shardfusion_sum_ms / datafusion_sum_ms,
        geometric_mean_ratio: (log_sum / correct.len().max(1) as f64).exp(),
        queries,
    }
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
            "SELECT rows_received / calls, bytes_received / calls FROM shardfusion_stat_statements \
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

/// The per-query table and totals, as Markdown.
pub fn markdown(options: &Options, report: &Report) -> String {
    let mut out = format!(
        "## TPC-H SF{} — {} workers, {} shards, {} iterations ({})\n\n",
        options.scale, options.workers, options.shards, options.iterations, report.target
    );
    if let Some(seconds) = report.load_seconds {
        out.push_str(&format!(
            "Loaded all 8 tables by COPY in {seconds:.1} s.\n\n"
        ));
    }
    out.push_str(
        "| query | ShardFusion median (ms) | min | max | DataFusion median (ms) | ratio | rows | rows shipped | bytes shipped |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in &report.queries {
        if !r.correct {
            out.push_str(&format!(
                "| Q{} | WRONG ANSWER (not timed): {} | | | | | {} | | |\n",
                r.query,
                r.difference.clone().unwrap_or_default().replace('|', "\\|"),
                r.rows
            ));
            continue;
        }
        let (sf, df) = (r.shardfusion_median(), r.datafusion_median());
        let min = r
            .shardfusion_ms
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let max = r.shardfusion_ms.iter().copied().fold(0.0, f64::max);
        out.push_str(&format!(
            "| Q{} | {sf:.1} | {min:.1} | {max:.1} | {df:.1} | {:.2} | {} | {} | {} |\n",
            r.query,
            sf / df,
            r.rows,
            r.rows_shipped,
            r.bytes_shipped
        ));
    }
    out.push_str(&format!(
        "| **sum** | **{:.1}** | | | **{:.1}** | **{:.2}** | | | |\n\n",
        report.shardfusion_sum_ms, report.datafusion_sum_ms, report.ratio
    ));
    out.push_str(&format!(
        "Sum of medians: ShardFusion {:.2} s, DataFusion {:.2} s, ratio {:.2}; geometric mean of \
         per-query ratios {:.2}.{}",
        report.shardfusion_sum_ms / 1000.0,
        report.datafusion_sum_ms / 1000.0,
        report.ratio,
        report.geometric_mean_ratio,
        if report.all_correct {
            " Every answer matched DataFusion's."
        } else {
            " SOME ANSWERS WERE WRONG (see the table); they are not in the sums."
        }
    ));
    out
}
