//! A small run of every `shardfusion-bench` subcommand (TPC-H SF 0.01, one iteration), so the
//! runner cannot rot: each verifies its answers and writes its reports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shardfusion_benchmarks::{
    ingest_run, memory_run, rebalance_run, rewrite_run, router_run, scaleout_run, tpch_run,
};

const SCALE: f64 = 0.01;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tpch-sf{SCALE}"))
}

fn assert_written(dir: &Path, name: &str, extensions: &[&str]) {
    for extension in extensions {
        let path = dir.join(format!("{name}.{extension}"));
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{} missing: {e}", path.display()))
            .len();
        assert!(size > 0, "{} is empty", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_verifies_all_22_queries_and_writes_reports() {
    let output = tempfile::tempdir().expect("temp dir");
    let report = tpch_run::run(tpch_run::Options {
        scale: SCALE,
        workers: 2,
        shards: 4,
        iterations: 1,
        queries: (1..=22).collect(),
        data_dir: Some(data_dir()),
        output: output.path().to_path_buf(),
        url: None,
        reload: false,
    })
    .await
    .expect("tpch run");
    assert!(report.all_correct, "some TPC-H answers differ");
    assert_eq!(report.queries.len(), 22);
    assert!(report.queries.iter().all(|q| q.shardfusion_ms.len() == 1));
    assert_written(output.path(), "tpch-sf0.01", &["json", "md", "svg"]);
    let markdown = std::fs::read_to_string(output.path().join("tpch-sf0.01.md")).expect("md");
    assert!(
        markdown.contains("| Q22 |") && markdown.contains("Machine:"),
        "{markdown}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(output.path().join("tpch-sf0.01.json")).expect("json"),
    )
    .expect("valid JSON");
    assert!(json["machine"]["cores"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(
        json["results"]["queries"].as_array().map(Vec::len),
        Some(22)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_against_an_external_cluster_by_url() {
    let cluster = shardfusion_tests::TestCluster::start(2).await;
    let output = tempfile::tempdir().expect("temp dir");
    let options = tpch_run::Options {
        scale: SCALE,
        workers: 2,
        shards: 4,
        iterations: 1,
        queries: vec![1, 6],
        data_dir: Some(data_dir()),
        output: output.path().to_path_buf(),
        url: Some(cluster.url.clone()),
        reload: false,
    };
    let first = tpch_run::run(options.clone()).await.expect("first run");
    assert!(first.all_correct && first.load_seconds.is_some());
    // The second run finds the tables loaded and reuses them.
    let second = tpch_run::run(options).await.expect("second run");
    assert!(second.all_correct && second.load_seconds.is_none());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_rewrite_router_scaleout_and_memory_report() {
    let output = tempfile::tempdir().expect("temp dir");
    let out = output.path().to_path_buf();
    let ingest = ingest_run::run(ingest_run::Options {
        scale: SCALE,
        workers: 2,
        shards: 4,
        data_dir: Some(data_dir()),
        output: out.clone(),
        url: None,
    })
    .await
    .expect("ingest");
    assert_eq!(ingest.rows, 60175);
    assert_eq!(ingest.loads.len(), 2);
    assert_written(&out, "ingest-sf0.01", &["json", "md"]);

    let rewrite = rewrite_run::run(rewrite_run::Options {
        scale: SCALE,
        workers: 2,
        shards: 4,
        iterations: 1,
        data_dir: Some(data_dir()),
        output: out.clone(),
        url: None,
    })
    .await
    .expect("rewrite");
    assert_eq!(rewrite.rows, 60175);
    // A tenth of the table each: every statement changed rows.
    assert!(
        rewrite.rewrites.iter().all(|r| r.rows_changed > 5000),
        "{rewrite:?}"
    );
    assert_written(&out, "rewrite-sf0.01", &["json", "md"]);

    let router = router_run::run(router_run::Options {
        scale: SCALE,
        workers: 2,
        shards: 4,
        clients: 2,
        duration: Duration::from_secs(1),
        data_dir: Some(data_dir()),
        output: out.clone(),
        url: None,
    })
    .await
    .expect("router");
    assert_eq!(router.workloads.len(), 4, "point ×2, dashboard, SELECT 1");
    for workload in &router.workloads {
        assert!(
            workload.queries > 0 && workload.errors == 0,
            "{}: {} queries, {} errors",
            workload.workload,
            workload.queries,
            workload.errors
        );
        assert!(workload.p50_ms <= workload.p99_ms);
        assert!(
            workload.plan_ms > 0.0 && workload.server_ms >= workload.plan_ms,
            "{}: the phases are measured",
            workload.workload
        );
    }
    assert_written(&out, "router-sf0.01", &["json", "md"]);

    let scaleout = scaleout_run::run(scaleout_run::Options {
        scale: SCALE,
        workers: vec![1, 2],
        shards: 4,
        iterations: 1,
        queries: vec![1, 3],
        data_dir: Some(data_dir()),
        output: out.clone(),
    })
    .await
    .expect("scaleout");
    assert_eq!(scaleout.steps.len(), 2);
    assert!(scaleout.steps.iter().all(|s| s.all_correct));
    assert_written(&out, "scaleout-sf0.01", &["json", "md", "svg"]);

    let memory = memory_run::run(memory_run::Options {
        scale: SCALE,
        workers: 2,
        shards: 4,
        data_dir: Some(data_dir()),
        output: out.clone(),
    })
    .await
    .expect("memory");
    assert_eq!(memory.rows, 60175);
    assert!(memory.peak_rss_bytes > 0);
    assert_written(&out, "memory-sf0.01", &["json", "md"]);

    let rebalance = rebalance_run::run(rebalance_run::Options {
        scale: SCALE,
        shards: 4,
        baseline: std::time::Duration::from_secs(1),
        data_dir: Some(data_dir()),
        output: out.clone(),
        storage: rebalance_run::Storage::Local,
    })
    .await
    .expect("rebalance");
    assert!(
        rebalance.moves > 0,
        "the third worker received shard groups"
    );
    assert!(rebalance.bytes_copied_worker_to_worker > 0);
    assert_eq!(rebalance.loop_errors, 0);
    assert_written(&out, "rebalance-sf0.01", &["json", "md"]);

    // On S3 (a moto server the runner starts) a move copies nothing.
    let on_s3 = rebalance_run::run(rebalance_run::Options {
        scale: SCALE,
        shards: 4,
        baseline: std::time::Duration::from_secs(1),
        data_dir: Some(data_dir()),
        output: out.clone(),
        storage: rebalance_run::Storage::S3,
    })
    .await
    .expect("rebalance on S3");
    assert!(on_s3.moves > 0);
    assert_eq!(on_s3.bytes_copied_worker_to_worker, 0);
    assert_eq!(on_s3.loop_errors, 0);
    assert_written(&out, "rebalance-s3-sf0.01", &["json", "md"]);
}
