//! Scaling out while the cluster serves, on separate `shardfusion` processes: a coordinator
//! and 2 workers loaded with TPC-H (32 shards per table) get a third worker, which registers
//! and receives the reference tables; `rebalance_table_shards()` spreads the shard groups
//! evenly; then `citus_drain_node` empties the first worker and `citus_remove_node` removes
//! it. Throughout, a loop of queries must never fail or return a wrong answer, and every
//! acknowledged concurrent `INSERT` must end up present exactly once. All 22 TPC-H answers
//! must match single-node DataFusion after each step. The same cycle runs again with every
//! node keeping its shard files in S3 (a moto server on loopback), where moves copy nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use shardfusion_benchmarks::processes::{
    ProcessCluster, ProcessClusterOptions, shardfusion_binary,
};
use shardfusion_benchmarks::s3_server::S3Server;
use shardfusion_benchmarks::tpch;
use shardfusion_benchmarks::tpch_run::single_node_tpch;
use shardfusion_tests::TestClient;
use shardfusion_tests::compare::assert_same;
use std::sync::Mutex;

const SCALE: f64 = 0.1;
const SHARDS: usize = 32;

fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tpch-sf{SCALE}"));
    tpch::generate(SCALE, &dir).expect("generate TPC-H data");
    dir
}

fn int(batches: &[RecordBatch], column: usize) -> i64 {
    let batch = batches.iter().find(|b| b.num_rows() > 0).expect("a row");
    let values = batch.column(column);
    if let Some(ints) = values.as_any().downcast_ref::<Int64Array>() {
        return ints.value(0);
    }
    datafusion::arrow::util::display::array_value_to_string(values, 0)
        .expect("printable")
        .parse()
        .expect("an integer")
}

/// All 22 TPC-H answers against single-node DataFusion over the same files.
async fn check_tpch(client: &mut TestClient, label: &str) {
    let dir = data_dir();
    let single = single_node_tpch(&dir).await.expect("single-node session");
    for number in 1..=22 {
        let sql = tpch::query(number).expect("query");
        let actual = client
            .query(sql)
            .await
            .unwrap_or_else(|s| panic!("[{label}] Q{number} failed: {}", s.message()));
        let expected = single
            .sql(sql)
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs");
        assert_same(&format!("[{label}] Q{number}"), &actual, &expected, true);
    }
}

/// Shard groups per node: one table of each colocation group counts its shards.
async fn shard_groups_per_node(client: &mut TestClient) -> BTreeMap<String, i64> {
    let batches = client
        .query(
            "SELECT nodename || ':' || CAST(nodeport AS TEXT) AS node, count(*) AS groups \
             FROM citus_shards WHERE table_name IN ('supplier', 'customer', 'orders', 'part') \
             GROUP BY 1 ORDER BY 1",
        )
        .await
        .expect("citus_shards");
    let mut out = BTreeMap::new();
    for batch in &batches {
        let nodes = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        let counts = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("count");
        for i in 0..batch.num_rows() {
            out.insert(nodes.value(i).to_string(), counts.value(i));
        }
    }
    out
}

/// What the loops running during a rebalance saw.
#[derive(Default)]
struct LoopRecord {
    queries: usize,
    failures: Vec<String>,
    latencies_ms: Vec<f64>,
    acknowledged_ids: Vec<i64>,
    inserts: usize,
}

/// Runs a query loop and an insert loop until `stop`; returns what they saw.
fn start_loops(
    url: String,
    expected: (i64, i64),
    stop: Arc<AtomicBool>,
    first_id: i64,
) -> tokio::task::JoinHandle<LoopRecord> {
    tokio::spawn(async move {
        let record = Arc::new(Mutex::new(LoopRecord::default()));
        let queries = {
            let (url, stop, record) = (url.clone(), Arc::clone(&stop), Arc::clone(&record));
            tokio::spawn(async move {
                let mut client = TestClient::connect(&url).await;
                let sql = "SELECT CAST(sum(l_quantity) AS BIGINT), count(*) FROM orders \
                           JOIN lineitem ON o_orderkey = l_orderkey";
                while !stop.load(Ordering::Acquire) {
                    let started = Instant::now();
                    let answer = client.query(sql).await;
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    let mut record = record.lock().expect("not poisoned");
                    record.queries += 1;
                    record.latencies_ms.push(ms);
                    match answer {
                        Ok(batches) => {
                            let got = (int(&batches, 0), int(&batches, 1));
                            if got != expected {
                                record
                                    .failures
                                    .push(format!("query returned {got:?}, not {expected:?}"));
                            }
                        }
                        Err(status) => record.failures.push(format!(
                            "query failed: {:?} {}",
                            status.code(),
                            status.message()
                        )),
                    }
                }
            })
        };
        let inserts = {
            let (stop, record) = (Arc::clone(&stop), Arc::clone(&record));
            tokio::spawn(async move {
                let mut client = TestClient::connect(&url).await;
                let mut next = first_id;
                while !stop.load(Ordering::Acquire) {
                    let ids: Vec<i64> = (next..next + 40).collect();
                    next += 40;
                    let values: Vec<String> =
                        ids.iter().map(|id| format!("({id}, 'row {id}')")).collect();
                    let sql = format!("INSERT INTO events VALUES {}", values.join(", "));
                    let answer = client.query(&sql).await;
                    let mut record = record.lock().expect("not poisoned");
                    record.inserts += 1;
                    match answer {
                        Ok(_) => record.acknowledged_ids.extend(ids),
                        Err(status) => record.failures.push(format!(
                            "insert failed: {:?} {}",
                            status.code(),
                            status.message()
                        )),
                    }
                }
            })
        };
        queries.await.expect("query loop");
        inserts.await.expect("insert loop");
        Arc::try_unwrap(record)
            .map_err(|_| "loops ended")
            .expect("sole owner")
            .into_inner()
            .expect("not poisoned")
    })
}

/// Checks what the loops saw and that the acknowledged rows are there exactly once.
async fn check_loops(
    client: &mut TestClient,
    record: &LoopRecord,
    label: &str,
    acked: &mut Vec<i64>,
) {
    assert!(
        record.failures.is_empty(),
        "[{label}] {} of {} queries and {} inserts went wrong, e.g. {:?}",
        record.failures.len(),
        record.queries,
        record.inserts,
        &record.failures[..record.failures.len().min(5)]
    );
    assert!(
        record.queries > 0 && record.inserts > 0,
        "[{label}] the loops ran"
    );
    acked.extend(&record.acknowledged_ids);
    let batches = client
        .query("SELECT count(*), count(DISTINCT id), CAST(sum(id) AS BIGINT) FROM events")
        .await
        .expect("events");
    let expected_sum: i64 = acked.iter().sum();
    assert_eq!(
        (int(&batches, 0), int(&batches, 1), int(&batches, 2)),
        (acked.len() as i64, acked.len() as i64, expected_sum),
        "[{label}] every acknowledged insert is there exactly once"
    );
    let mut latencies = record.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "[{label}] {} queries (p50 {:.1} ms, max {:.1} ms), {} inserts, no failure",
        record.queries,
        latencies[latencies.len() / 2],
        latencies.last().copied().unwrap_or_default(),
        record.inserts
    );
}

/// Waits until `count` nodes are active (a joining node is active once it has a copy of
/// every reference table).
async fn wait_for_nodes(client: &mut TestClient, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while int(
        &client
            .query("SELECT count(*) FROM pg_dist_node WHERE isactive")
            .await
            .expect("pg_dist_node"),
        0,
    ) != count
    {
        assert!(Instant::now() < deadline, "{count} nodes within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn binary() -> PathBuf {
    shardfusion_binary().expect(
        "the shardfusion binary is built next to the tests (cargo build --workspace \
         --all-targets) or named by SHARDFUSION_BIN",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_rebalance_drain_and_remove_while_serving() {
    tokio::time::timeout(Duration::from_secs(1500), async {
        let mut cluster = ProcessCluster::start(&binary(), 2)
            .await
            .expect("the process cluster starts");
        let moved = grow_and_shrink(&mut cluster).await;
        assert!(moved > 0, "the moves copied the shards' bytes");
        drop(cluster);
    })
    .await
    .expect("the test finishes within 1500 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_rebalance_drain_and_remove_on_s3() {
    tokio::time::timeout(Duration::from_secs(1500), async {
        let s3 = S3Server::start("shardfusion").expect("the S3 server starts");
        let options = ProcessClusterOptions {
            env: s3.env(),
            storage: Some(s3.storage_url("cluster-1")),
            // Orphan collection takes anything unlisted at once: it must find nothing live.
            coordinator_args: vec!["--orphan-grace-period".into(), "0".into()],
        };
        let mut cluster = ProcessCluster::start_with(&binary(), 2, options)
            .await
            .expect("the process cluster starts on S3");
        let copied = grow_and_shrink(&mut cluster).await;
        assert_eq!(copied, 0, "on shared storage a move copies no bytes");
        let mut client = TestClient::connect(&cluster.url).await;
        // The shard files are in the bucket, none on the workers' disks.
        assert!(s3.count_objects("cluster-1/shards/").expect("list") > 0);
        for index in 0..3 {
            let dir = cluster.worker_data_dir(index).expect("data dir");
            assert!(!dir.join("shards").exists(), "{} has shards", dir.display());
        }
        // Reconciliation lists the bucket once for the cluster: every file a placement on
        // any node lists stays.
        client
            .run("SELECT citus_cleanup_orphaned_resources()")
            .await;
        check_tpch(&mut client, "S3, after orphan cleanup").await;
        // A worker that keeps its shard files on its own disk cannot join this cluster.
        let coordinator_port = cluster.url.rsplit(':').next().expect("port");
        let dir = tempfile::tempdir().expect("temp dir");
        let local_worker = std::process::Command::new(binary())
            .args(["worker", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args([
                "--coordinator",
                &format!("http://127.0.0.1:{coordinator_port}"),
            ])
            .env("SHARDFUSION_CLUSTER_SECRET", ProcessCluster::SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("a local-storage worker starts");
        let output = tokio::task::spawn_blocking(move || local_worker.wait_with_output())
            .await
            .expect("joins")
            .expect("the worker exits");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains("same --storage"),
            "{stderr}"
        );
        wait_for_nodes(&mut client, 2).await;
        drop(cluster);
    })
    .await
    .expect("the test finishes within 1500 s");
}

/// On a cluster of 2 workers: loads TPC-H, adds a third worker and rebalances, then drains
/// and removes the first, with query and insert loops running, checking placements and
/// answers after each step. Returns the bytes the moves copied worker to worker.
async fn grow_and_shrink(cluster: &mut ProcessCluster) -> i64 {
    {
        let mut client = TestClient::connect(&cluster.url).await;
        tpch::load(&mut client, &data_dir(), SHARDS, &tpch::TABLES, &|_| {})
            .await
            .expect("TPC-H loads");
        client
            .run("CREATE TABLE events (id BIGINT NOT NULL, v TEXT)")
            .await;
        client
            .run("SELECT create_distributed_table('events', 'id', colocate_with => 'orders')")
            .await;
        let expected = {
            let batches = client
                .run(
                    "SELECT CAST(sum(l_quantity) AS BIGINT), count(*) FROM orders \
                     JOIN lineitem ON o_orderkey = l_orderkey",
                )
                .await;
            (int(&batches, 0), int(&batches, 1))
        };
        let mut acked = Vec::new();

        // A third worker registers and gets the reference tables at once.
        let third = cluster.add_worker().expect("a third worker starts");
        wait_for_nodes(&mut client, 3).await;
        let third_port = cluster.worker_port(third).expect("port");
        let reference_copies = client
            .scalar(&format!(
                "SELECT count(*) FROM citus_shards WHERE citus_table_type = 'reference' \
                 AND nodeport = {third_port}"
            ))
            .await;
        assert_eq!(
            reference_copies, "2",
            "region and nation are on the new node"
        );
        let before = shard_groups_per_node(&mut client).await;
        assert_eq!(
            before.len(),
            2,
            "the new node holds no shard yet: {before:?}"
        );
        let first_port = cluster.worker_port(0).expect("port");
        let message = client
            .expect_error(
                &format!("SELECT citus_remove_node('127.0.0.1', {first_port})"),
                tonic::Code::FailedPrecondition,
            )
            .await;
        assert!(message.contains("citus_drain_node"), "{message}");

        let plan = client
            .run("SELECT count(*) FROM get_rebalance_table_shards_plan()")
            .await;
        assert!(int(&plan, 0) > 0, "the plan moves shard groups");

        // Rebalance with the loops running.
        let stop = Arc::new(AtomicBool::new(false));
        let loops = start_loops(cluster.url.clone(), expected, Arc::clone(&stop), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        client.run("SELECT rebalance_table_shards()").await;
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Release);
        let record = loops.await.expect("loops");
        check_loops(&mut client, &record, "rebalance", &mut acked).await;
        eprintln!("rebalance took {:.1} s", took.as_secs_f64());

        let after = shard_groups_per_node(&mut client).await;
        assert_eq!(after.len(), 3, "{after:?}");
        let (most, fewest) = (
            after.values().max().copied().unwrap_or_default(),
            after.values().min().copied().unwrap_or_default(),
        );
        assert!(most - fewest <= 1, "placements per node: {after:?}");
        let progress = client
            .run("SELECT count(*) FROM get_rebalance_progress() WHERE progress = 2")
            .await;
        assert!(int(&progress, 0) > 0, "the moves are listed as done");
        check_tpch(&mut client, "after rebalance").await;
        let copied = int(
            &client
                .run(
                    "SELECT CAST(coalesce(sum(bytes_copied), 0) AS BIGINT) \
                     FROM get_rebalance_progress()",
                )
                .await,
            0,
        );

        // Drain the first worker, then remove it.
        let stop = Arc::new(AtomicBool::new(false));
        let loops = start_loops(
            cluster.url.clone(),
            expected,
            Arc::clone(&stop),
            1_000_000_000,
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        client
            .run(&format!(
                "SELECT citus_drain_node('127.0.0.1', {first_port})"
            ))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Release);
        let record = loops.await.expect("loops");
        check_loops(&mut client, &record, "drain", &mut acked).await;
        let drained = shard_groups_per_node(&mut client).await;
        assert_eq!(drained.len(), 2, "{drained:?}");
        assert!(!drained.contains_key(&format!("127.0.0.1:{first_port}")));
        // Only its reference-table copies are left; they go with the node, as in Citus.
        client
            .run(&format!(
                "SELECT citus_remove_node('127.0.0.1', {first_port})"
            ))
            .await;
        cluster.kill_worker(0).expect("kill the removed worker");
        wait_for_nodes(&mut client, 2).await;
        check_tpch(&mut client, "after drain and remove").await;
        copied
    }
}

/// The node id and port of each node, by port.
async fn node_ids(client: &mut TestClient) -> BTreeMap<i64, i64> {
    let batches = client
        .query("SELECT CAST(nodeport AS BIGINT), CAST(nodeid AS BIGINT) FROM pg_dist_node")
        .await
        .expect("pg_dist_node");
    let mut out = BTreeMap::new();
    for batch in &batches {
        let ports = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("port");
        let ids = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id");
        for i in 0..batch.num_rows() {
            out.insert(ports.value(i), ids.value(i));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_whose_target_dies_leaves_the_old_placement_serving() {
    let binary = binary();
    tokio::time::timeout(Duration::from_secs(400), async {
        let mut cluster = ProcessCluster::start(&binary, 2)
            .await
            .expect("the process cluster starts");
        let mut client = TestClient::connect(&cluster.url).await;
        client
            .run("CREATE TABLE payments (k BIGINT NOT NULL, memo TEXT NOT NULL)")
            .await;
        client
            .run("SELECT create_distributed_table('payments', 'k', shard_count => 8)")
            .await;
        // Incompressible text, so that each shard's file takes a while to copy.
        client
            .run(
                "INSERT INTO payments SELECT value, md5(CAST(value AS TEXT)) || \
                 md5(CAST(value * 7 AS TEXT)) FROM generate_series(1, 1200000)",
            )
            .await;
        let expected = client
            .scalar("SELECT CAST(sum(k) AS BIGINT) FROM payments")
            .await;
        let source_port = i64::from(cluster.worker_port(0).expect("port"));
        let third = cluster.add_worker().expect("a third worker");
        wait_for_nodes(&mut client, 3).await;
        let target_port = i64::from(cluster.worker_port(third).expect("port"));
        let target_dir = cluster.worker_data_dir(third).expect("data dir");
        let ids = node_ids(&mut client).await;
        let (source, target) = (ids[&source_port], ids[&target_port]);
        let shards: Vec<i64> = {
            let batches = client
                .run(&format!(
                    "SELECT shardid FROM citus_shards WHERE table_name = 'payments' \
                     AND nodeport = {source_port} ORDER BY shardid"
                ))
                .await;
            batches
                .iter()
                .flat_map(|b| {
                    let ids = b
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("id");
                    (0..b.num_rows()).map(|i| ids.value(i)).collect::<Vec<_>>()
                })
                .collect()
        };
        assert_eq!(shards.len(), 4, "{shards:?}");

        let (mut failed, mut moved) = (0, 0);
        let mut cut_mid_move = 0;
        for (shard, delay_ms) in shards.iter().zip([0u64, 0, 0, 60]) {
            let sql = format!("SELECT citus_move_shard_placement({shard}, {source}, {target})");
            let mut mover = TestClient::connect(&cluster.url).await;
            let attempt = tokio::spawn(async move { mover.query(&sql).await });
            // Kill the target once it receives a file (a staging file appears in its data
            // directory), or after a fixed delay.
            let started = Instant::now();
            let mut running = false;
            while !attempt.is_finished() && started.elapsed() < Duration::from_secs(10) {
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    break;
                }
                running = shardfusion_tests::shard_files::on_disk(&target_dir)
                    .iter()
                    .any(|f| f.to_string_lossy().contains(".parquet#"));
                if running {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            cluster.kill_worker(third).expect("kill the target");
            let result = attempt.await.expect("the move returns");
            if running && result.is_err() {
                cut_mid_move += 1;
            }
            let placed_on = client
                .scalar(&format!(
                    "SELECT CAST(nodeport AS BIGINT) FROM citus_shards WHERE shardid = {shard}"
                ))
                .await;
            match &result {
                Err(status) => {
                    failed += 1;
                    eprintln!("move of {shard} after {delay_ms} ms: {}", status.message());
                    // The old placement serves, with every row.
                    assert_eq!(placed_on, source_port.to_string());
                    assert_eq!(
                        client
                            .scalar("SELECT CAST(sum(k) AS BIGINT) FROM payments")
                            .await,
                        expected
                    );
                }
                Ok(_) => {
                    moved += 1;
                    assert_eq!(placed_on, target_port.to_string());
                }
            }
            // The target comes back under its old identity; a retried move succeeds.
            cluster.restart_worker(third).expect("restart the target");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let answer = client
                    .query("SELECT CAST(sum(k) AS BIGINT) FROM payments")
                    .await;
                if let Ok(batches) = &answer
                    && int(batches, 0).to_string() == expected
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster answers again: {answer:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert_eq!(
                node_ids(&mut client).await[&target_port],
                target,
                "same node id"
            );
            if result.is_err() {
                // Retried until the restarted target answers again.
                let retry =
                    format!("SELECT citus_move_shard_placement({shard}, {source}, {target})");
                let deadline = Instant::now() + Duration::from_secs(60);
                while let Err(status) = client.query(&retry).await {
                    assert_eq!(
                        status.code(),
                        tonic::Code::Unavailable,
                        "{}",
                        status.message()
                    );
                    assert!(Instant::now() < deadline, "the retried move succeeds");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            assert_eq!(
                client
                    .scalar(&format!(
                        "SELECT CAST(nodeport AS BIGINT) FROM citus_shards WHERE shardid = {shard}"
                    ))
                    .await,
                target_port.to_string()
            );
            assert_eq!(
                client
                    .scalar("SELECT CAST(sum(k) AS BIGINT) FROM payments")
                    .await,
                expected
            );
            // Back to the source, so the next kill finds the target holding nothing (there
            // is no failover yet: a dead node's shards are unavailable).
            client
                .run(&format!(
                    "SELECT citus_move_shard_placement({shard}, {target}, {source})"
                ))
                .await;
        }
        eprintln!("{failed} moves failed with their target, {moved} finished before it died");
        assert!(
            cut_mid_move > 0,
            "at least one move was cut off by its target's death while it copied"
        );
        // Nothing is owed once the statements are over: the copies of the failed moves and
        // the sources of the finished ones are deleted.
        client
            .run("SELECT citus_cleanup_orphaned_resources()")
            .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.scalar("SELECT count(*) FROM pg_dist_cleanup").await != "0" {
            assert!(Instant::now() < deadline, "pg_dist_cleanup empties");
            tokio::time::sleep(Duration::from_millis(200)).await;
            client
                .run("SELECT citus_cleanup_orphaned_resources()")
                .await;
        }
        drop(cluster);
    })
    .await
    .expect("the test finishes within 400 s");
}
