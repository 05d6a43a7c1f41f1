//! `shardfusion-bench scaleout`: the same TPC-H queries on embedded clusters of 1, 2, 4, ...
//! workers (same shard count), every answer verified; reports the sum of medians at each size
//! and the speed-up over the smallest.

use std::path::PathBuf;

use serde::Serialize;

use crate::cluster::TestCluster;
use crate::tpch_run::{QueryResult, load_target, run_queries, single_node_tpch};

#[derive(Debug, Clone)]
pub struct Options {
    pub scale: f64,
    pub workers: Vec<usize>,
    pub shards: usize,
    pub iterations: usize,
    pub queries: Vec<usize>,
    pub data_dir: Option<PathBuf>,
    pub output: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub workers: usize,
    pub load_seconds: f64,
    pub sum_of_medians_ms: f64,
    pub speedup: f64,
    pub all_correct: bool,
    pub queries: Vec<QueryResult>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: f64,
    pub shards: usize,
    pub iterations: usize,
    pub queries: Vec<usize>,
    pub datafusion_sum_ms: f64,
    pub steps: Vec<Step>,
}

pub async fn run(options: Options) -> Result<Report, String> {
    let dir = crate::tpch_run::prepare_data(options.scale, options.data_dir.clone())?;
    let single = single_node_tpch(&dir).await?;
    let mut steps: Vec<Step> = Vec::new();
    let mut datafusion_sum_ms = 0.0;
    for &workers in &options.workers {
        eprintln!("{workers} worker(s):");
        let cluster = TestCluster::start(workers).await;
        let mut client = cluster.client().await;
        let load_seconds = load_target(&mut client, &dir, options.shards, false, false)
            .await?
            .unwrap_or_default();
        let queries =
            run_queries(&mut client, &single, &options.queries, options.iterations).await?;
        cluster.shutdown().await;
        let all_correct = queries.iter().all(|q| q.correct);
        let sum: f64 = queries
            .iter()
            .filter(|q| q.correct)
            .map(|q| q.shardfusion_median())
            .sum();
        datafusion_sum_ms = queries.iter().map(|q| q.datafusion_median()).sum();
        let first = steps.first().map_or(sum, |s| s.sum_of_medians_ms);
        steps.push(Step {
            workers,
            load_seconds,
            sum_of_medians_ms: sum,
            speedup: first / sum,
            all_correct,
            queries,
        });
    }
    let report = Report {
        scale: options.scale,
        shards: options.shards,
        iterations: options.iterations,
        queries: options.queries.clone(),
        datafusion_sum_ms,
        steps,
    };
    let mut markdown = format!(
        "## Scale-out: TPC-H SF{} queries {:?}, {} shards, {} iterations\n\n\
         | workers | load (s) | sum of medians (ms) | speed-up | answers |\n|---|---|---|---|---|\n",
        report.scale, report.queries, report.shards, report.iterations
    );
    for step in &report.steps {
        markdown.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.2} | {} |\n",
            step.workers,
            step.load_seconds,
            step.sum_of_medians_ms,
            step.speedup,
            if step.all_correct {
                "all verified"
            } else {
                "SOME WRONG"
            }
        ));
    }
    markdown.push_str(&format!(
        "\nSingle-node DataFusion on the same queries: {:.1} ms (sum of medians).",
        report.datafusion_sum_ms
    ));
    let name = crate::report::publish(
        &options.output,
        "scaleout",
        options.scale,
        &report,
        &markdown,
    )?;
    let chart = options.output.join(format!("{name}.svg"));
    let points: Vec<(usize, f64)> = report
        .steps
        .iter()
        .map(|s| (s.workers, s.sum_of_medians_ms / 1000.0))
        .collect();
    crate::chart::scaleout(
        &chart,
        &format!("Scale-out, TPC-H SF{}", options.scale),
        &points,
    )?;
    eprintln!("wrote {}", chart.display());
    Ok(report)
}
