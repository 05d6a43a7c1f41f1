//! `shardfusion-bench rewrite`: `UPDATE` and `DELETE` of 10% of TPC-H `lineitem` (every shard,
//! every file touched), with their time and rows/s, against single-node DataFusion reading
//! the same file and writing it back with the same change.
//!
//! Each statement runs `iterations` times on a fresh tenth of the table (`l_orderkey % 10 =
//! d` for a new digit `d` each time), and the median is reported. The table's row counts are
//! checked against DataFusion's after the deletes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::client::TestClient;
use crate::progress;
use crate::target::Target;
use crate::tpch;

#[derive(Debug, Clone)]
pub struct Options {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub iterations: usize,
    pub data_dir: Option<PathBuf>,
    pub output: PathBuf,
    pub url: Option<String>,
}

/// One statement's runs.
#[derive(Debug, Clone, Serialize)]
pub struct Rewrite {
    pub statement: String,
    /// Median seconds over the runs.
    pub seconds: f64,
    pub seconds_each: Vec<f64>,
    /// Rows the statement changed (median run).
    pub rows_changed: u64,
    pub rows_changed_per_second: f64,
    /// DataFusion's median seconds for the same change, read and rewritten locally.
    pub datafusion_seconds: f64,
    /// `seconds` divided by `datafusion_seconds`.
    pub ratio_to_datafusion: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub target: String,
    pub rows: u64,
    pub iterations: usize,
    pub rewrites: Vec<Rewrite>,
}

/// The table the statements change.
const TABLE: &str = "bench_rewrite";

pub async fn run(options: Options) -> Result<Report, String> {
    let dir = crate::tpch_run::prepare_data(options.scale, options.data_dir.clone())?;
    let lineitem = (tpch::TABLES.iter())
        .find(|t| t.name == "lineitem")
        .ok_or("no lineitem table")?;
    let source = lineitem.parquet_path(&dir);
    let iterations = options.iterations.clamp(1, 5);
    let steps = progress::bar(1 + 4 * iterations as u64, "rewrite");

    let target = Target::start(options.url.clone(), options.workers).await?;
    let mut client = target.client().await?;
    steps.set_message("load lineitem");
    let ddl = lineitem
        .ddl
        .replacen("CREATE TABLE lineitem", &format!("CREATE TABLE {TABLE}"), 1);
    for sql in [
        format!("DROP TABLE IF EXISTS {TABLE}"),
        ddl,
        format!(
            "SELECT create_distributed_table('{TABLE}', 'l_orderkey', shard_count => {})",
            options.shards
        ),
        format!(
            "COPY {TABLE} FROM '{}' WITH (FORMAT parquet)",
            source.display()
        ),
    ] {
        run_sql(&mut client, &sql).await?;
    }
    let rows: u64 = client
        .scalar(&format!("SELECT count(*) FROM {TABLE}"))
        .await
        .parse()
        .map_err(|e| format!("row count: {e}"))?;
    steps.inc(1);

    let columns: Vec<String> = crate::compare::single_node_session()
        .read_parquet(
            source.to_string_lossy().as_ref(),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // (seconds, rows changed, DataFusion's seconds) per run.
    let mut update: Vec<(f64, u64, f64)> = Vec::new();
    let mut delete: Vec<(f64, u64, f64)> = Vec::new();
    for run in 0..iterations {
        let digit = run;
        steps.set_message(format!("UPDATE, run {}", run + 1));
        let sql = format!(
            "UPDATE {TABLE} SET l_comment = upper(l_comment), l_quantity = l_quantity + 1 \
             WHERE l_orderkey % 10 = {digit}"
        );
        let (seconds, changed) = timed_update(&mut client, &sql).await?;
        update.push((seconds, changed, 0.0));
        steps.inc(1);
        let projection: Vec<String> = (columns.iter())
            .map(|c| match c.as_str() {
                "l_comment" => format!(
                    "CASE WHEN l_orderkey % 10 = {digit} THEN upper(l_comment) ELSE l_comment END AS l_comment"
                ),
                "l_quantity" => format!(
                    "CASE WHEN l_orderkey % 10 = {digit} THEN l_quantity + 1 ELSE l_quantity END AS l_quantity"
                ),
                other => other.to_string(),
            })
            .collect();
        let query = format!("SELECT {} FROM source", projection.join(", "));
        if let Some(last) = update.last_mut() {
            last.2 = datafusion_rewrite(&source, &query).await?;
        }
        steps.inc(1);

        let digit = iterations + run;
        steps.set_message(format!("DELETE, run {}", run + 1));
        let sql = format!("DELETE FROM {TABLE} WHERE l_orderkey % 10 = {digit}");
        let (seconds, changed) = timed_update(&mut client, &sql).await?;
        delete.push((seconds, changed, 0.0));
        steps.inc(1);
        let query = format!("SELECT * FROM source WHERE NOT (l_orderkey % 10 = {digit})");
        if let Some(last) = delete.last_mut() {
            last.2 = datafusion_rewrite(&source, &query).await?;
        }
        steps.inc(1);
    }
    steps.finish_and_clear();
    // The deletes took exactly their tenths.
    let kept: u64 = client
        .scalar(&format!("SELECT count(*) FROM {TABLE}"))
        .await
        .parse()
        .map_err(|e| format!("row count: {e}"))?;
    let deleted: u64 = delete.iter().map(|(_, rows, _)| rows).sum();
    if kept + deleted != rows {
        return Err(format!(
            "{TABLE} kept {kept} rows after deleting {deleted} of {rows}"
        ));
    }
    let _ = client.query(&format!("DROP TABLE IF EXISTS {TABLE}")).await;
    let described = target.describe();
    target.shutdown().await;

    let rewrites = vec![
        summarize(
            "UPDATE lineitem SET l_comment = upper(l_comment), l_quantity = l_quantity + 1 \
             WHERE l_orderkey % 10 = d",
            &update,
        ),
        summarize("DELETE FROM lineitem WHERE l_orderkey % 10 = d", &delete),
    ];
    let report = Report {
        scale: options.scale,
        workers: options.workers,
        shards: options.shards,
        target: described,
        rows,
        iterations,
        rewrites,
    };
    let markdown = markdown(&report);
    crate::report::publish(
        &options.output,
        "rewrite",
        options.scale,
        &report,
        &markdown,
    )?;
    Ok(report)
}

async fn run_sql(client: &mut TestClient, sql: &str) -> Result<(), String> {
    client
        .query(sql)
        .await
        .map(|_| ())
        .map_err(|s| format!("{sql}: {}", s.message()))
}

/// Runs `sql` (an UPDATE or DELETE); returns its seconds and the rows it changed.
async fn timed_update(client: &mut TestClient, sql: &str) -> Result<(f64, u64), String> {
    let started = Instant::now();
    let changed = client
        .update(sql)
        .await
        .map_err(|s| format!("{sql}: {}", s.message()))?;
    Ok((started.elapsed().as_secs_f64(), changed.max(0) as u64))
}

/// DataFusion's seconds for writing `query`'s rows of `source` back (see
/// [`crate::compare::single_node_rewrite`]).
async fn datafusion_rewrite(source: &Path, query: &str) -> Result<f64, String> {
    Ok(crate::compare::single_node_rewrite(source, query).await?.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn summarize(statement: &str, runs: &[(f64, u64, f64)]) -> Rewrite {
    let seconds_each: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let seconds = median(&mut seconds_each.clone());
    let mut changed: Vec<u64> = runs.iter().map(|r| r.1).collect();
    changed.sort_unstable();
    let rows_changed = changed.get(changed.len() / 2).copied().unwrap_or_default();
    let datafusion_seconds = median(&mut runs.iter().map(|r| r.2).collect::<Vec<_>>());
    Rewrite {
        statement: statement.to_string(),
        seconds,
        seconds_each,
        rows_changed,
        rows_changed_per_second: rows_changed as f64 / seconds,
        datafusion_seconds,
        ratio_to_datafusion: seconds / datafusion_seconds,
    }
}

fn markdown(report: &Report) -> String {
    let mut out = format!(
        "## UPDATE and DELETE: 10% of TPC-H SF{} lineitem ({} rows) in {} shards ({}), median of {}\n\n",
        report.scale, report.rows, report.shards, report.target, report.iterations
    );
    out.push_str(
        "| statement | seconds | rows changed | rows changed/s | DataFusion rewrite (s) | ratio |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in &report.rewrites {
        out.push_str(&format!(
            "| `{}` | {:.2} | {} | {:.0} | {:.2} | {:.2} |\n",
            r.statement,
            r.seconds,
            r.rows_changed,
            r.rows_changed_per_second,
            r.datafusion_seconds,
            r.ratio_to_datafusion
        ));
    }
    out
}
