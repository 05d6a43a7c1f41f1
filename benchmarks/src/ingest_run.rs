//! `shardfusion-bench ingest`: loading TPC-H `lineitem` into a distributed table by `COPY` and
//! by Flight SQL bulk ingest, against the time single-node DataFusion takes to read the same
//! file and write it back as Parquet locally.

use std::path::PathBuf;
use std::time::Instant;

use futures::StreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
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
    pub data_dir: Option<PathBuf>,
    pub output: PathBuf,
    pub url: Option<String>,
}

/// One way of loading the file.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub method: String,
    pub seconds: f64,
    pub rows: u64,
    pub rows_per_second: f64,
    /// Seconds divided by DataFusion's local read-and-rewrite seconds.
    pub ratio_to_datafusion: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: f64,
    pub workers: usize,
    pub shards: usize,
    pub target: String,
    pub rows: u64,
    pub parquet_bytes: u64,
    pub datafusion_rewrite_seconds: f64,
    pub loads: Vec<Load>,
}

pub async fn run(options: Options) -> Result<Report, String> {
    let dir = crate::tpch_run::prepare_data(options.scale, options.data_dir.clone())?;
    let lineitem = tpch::TABLES
        .iter()
        .find(|t| t.name == "lineitem")
        .ok_or("no lineitem table")?;
    let source = lineitem.parquet_path(&dir);
    let parquet_bytes = std::fs::metadata(&source).map_err(|e| e.to_string())?.len();

    let steps = progress::bar(3, "ingest");
    steps.set_message("DataFusion: read and rewrite as Parquet");
    let (datafusion_rewrite_seconds, rows) =
        crate::compare::single_node_rewrite(&source, "SELECT * FROM source").await?;
    steps.inc(1);

    let target = Target::start(options.url.clone(), options.workers).await?;
    let mut client = target.client().await?;
    steps.set_message("COPY FROM parquet");
    let copy_seconds = {
        prepare_table(
            &mut client,
            lineitem.ddl,
            "bench_ingest_copy",
            options.shards,
        )
        .await?;
        let started = Instant::now();
        let sql = format!(
            "COPY bench_ingest_copy FROM '{}' WITH (FORMAT parquet)",
            source.display()
        );
        client
            .query(&sql)
            .await
            .map_err(|s| format!("{sql}: {}", s.message()))?;
        started.elapsed().as_secs_f64()
    };
    check_rows(&mut client, "bench_ingest_copy", rows).await?;
    steps.inc(1);

    steps.set_message("Flight SQL bulk ingest");
    let ingest_seconds = {
        prepare_table(
            &mut client,
            lineitem.ddl,
            "bench_ingest_flight",
            options.shards,
        )
        .await?;
        let started = Instant::now();
        let file = tokio::fs::File::open(&source)
            .await
            .map_err(|e| format!("cannot open {}: {e}", source.display()))?;
        let stream = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| e.to_string())?
            .map(|b| b.map_err(|e| arrow_flight::error::FlightError::ExternalError(Box::new(e))));
        client
            .ingest("bench_ingest_flight", stream)
            .await
            .map_err(|s| format!("bulk ingest: {}", s.message()))?;
        started.elapsed().as_secs_f64()
    };
    check_rows(&mut client, "bench_ingest_flight", rows).await?;
    steps.inc(1);
    steps.finish_and_clear();
    for table in ["bench_ingest_copy", "bench_ingest_flight"] {
        let _ = client.query(&format!("DROP TABLE IF EXISTS {table}")).await;
    }
    let described = target.describe();
    target.shutdown().await;

    let load = |method: &str, seconds: f64| Load {
        method: method.to_string(),
        seconds,
        rows,
        rows_per_second: rows as f64 / seconds,
        ratio_to_datafusion: seconds / datafusion_rewrite_seconds,
    };
    let report = Report {
        scale: options.scale,
        workers: options.workers,
        shards: options.shards,
        target: described,
        rows,
        parquet_bytes,
        datafusion_rewrite_seconds,
        loads: vec![
            load("COPY ... FROM parquet", copy_seconds),
            load(
                "Flight SQL bulk ingest (client reads the file)",
                ingest_seconds,
            ),
        ],
    };
    let markdown = markdown(&report);
    crate::report::publish(&options.output, "ingest", options.scale, &report, &markdown)?;
    Ok(report)
}

async fn prepare_table(
    client: &mut TestClient,
    ddl: &str,
    name: &str,
    shards: usize,
) -> Result<(), String> {
    let ddl = ddl.replacen("CREATE TABLE lineitem", &format!("CREATE TABLE {name}"), 1);
    for sql in [
        format!("DROP TABLE IF EXISTS {name}"),
        ddl,
        format!("SELECT create_distributed_table('{name}', 'l_orderkey', shard_count => {shards})"),
    ] {
        client
            .query(&sql)
            .await
            .map_err(|s| format!("{sql}: {}", s.message()))?;
    }
    Ok(())
}

async fn check_rows(client: &mut TestClient, table: &str, expected: u64) -> Result<(), String> {
    let count = client
        .scalar(&format!("SELECT count(*) FROM {table}"))
        .await;
    if count != expected.to_string() {
        return Err(format!(
            "{table} has {count} rows after loading, expected {expected}"
        ));
    }
    Ok(())
}

fn markdown(report: &Report) -> String {
    let mut out = format!(
        "## Ingest: TPC-H SF{} lineitem ({} rows, {:.0} MiB of Parquet) into {} shards ({})\n\n",
        report.scale,
        report.rows,
        report.parquet_bytes as f64 / (1024.0 * 1024.0),
        report.shards,
        report.target
    );
    out.push_str("| method | seconds | rows/s | ratio to DataFusion |\n|---|---|---|---|\n");
    out.push_str(&format!(
        "| DataFusion (single node): read + write Parquet locally | {:.2} | {:.0} | 1.00 |\n",
        report.datafusion_rewrite_seconds,
        report.rows as f64 / report.datafusion_rewrite_seconds
    ));
    for load in &report.loads {
        out.push_str(&format!(
            "| {} | {:.2} | {:.0} | {:.2} |\n",
            load.method, load.seconds, load.rows_per_second, load.ratio_to_datafusion
        ));
    }
    out
}
