//! Joins where only one side is keyed by its distribution column: the other side's rows can
//! be sent straight into that side's shards (routed by the shard their key hashes to), which
//! is only right when equal keys hash alike. Answers equal single-node DataFusion's for key
//! types that may be routed (INT with BIGINT or SMALLINT, TEXT with VARCHAR, DATE, DECIMAL of
//! one scale) and for those that must not be (DOUBLE with BIGINT, DECIMAL with BIGINT), with
//! NULL keys in outer joins, semi and anti joins, a staying side pruned to few shards, a
//! reference table, and chains mixing co-located, shard-aligned and hash-shuffled joins.
//!
//! The planner moves a side into the other's shards only when that sends fewer rows than
//! broadcasting the smaller side: the unfiltered fact table is joined by broadcasting each
//! dimension, a filtered one is moved. Runs with `shardfusion.broadcast_join_max_rows = 0`
//! (no broadcasts) make every query here take the shard-aligned or hash-shuffled paths.

use std::path::Path;
use std::time::Duration;

use datafusion::prelude::{SessionConfig, SessionContext};
use shardfusion_tests::compare::{rows, same, single_node_session};
use shardfusion_tests::planner_settings::{broadcasts, without_broadcasts};
use shardfusion_tests::same_rows::load_table;
use shardfusion_tests::{TestClient, TestCluster};

#[path = "support/shard_aligned_joins_data.rs"]
mod data;
use data::*;

async fn load(
    client: &mut TestClient,
    dir: &Path,
    fact_shards: usize,
    dim_shards: usize,
) -> SessionContext {
    let single = single_node_session();
    for (name, ddl, kind, batch) in data() {
        let distribute = match kind {
            Kind::Distributed(column, shards) => {
                let shards = match shards {
                    Shards::Facts => fact_shards,
                    Shards::Dimensions => dim_shards,
                };
                format!(
                    "SELECT create_distributed_table('{name}', '{column}', \
                     shard_count => {shards})"
                )
            }
            Kind::Reference => format!("SELECT create_reference_table('{name}')"),
        };
        load_table(client, &single, dir, (name, ddl, Some(&distribute)), &batch).await;
    }
    single
}

/// Every query's answer equals single-node DataFusion's, and the plans move what they should,
/// with the coordinator planning with `config`.
async fn run_with(fact_shards: usize, dim_shards: usize, workers: usize, config: SessionConfig) {
    let dir = tempfile::tempdir().expect("temp dir");
    let partitions = config.target_partitions();
    let broadcasting = broadcasts(&config);
    let cluster = TestCluster::start_with_config(workers, config).await;
    let mut client = cluster.client().await;
    let single = load(&mut client, dir.path(), fact_shards, dim_shards).await;
    let mut wrong = Vec::new();
    for (sql, ordered) in QUERIES {
        let want = single
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("single node cannot plan {sql}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("single node failed on {sql}: {e}"));
        match client.query(sql).await {
            Ok(got) => {
                if let Err(difference) = same(&got, &want, *ordered) {
                    let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
                    wrong.push(format!("{sql}\n  => {difference}\n{plan}"));
                }
            }
            Err(status) => wrong.push(format!(
                "{sql}\n  => failed: {:?} {}",
                status.code(),
                status.message()
            )),
        }
    }
    if dim_shards > 1 {
        for (sql, shown) in ALIGNED {
            let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
            if !plan.contains(shown) {
                wrong.push(format!("{sql}\n  => not moved into shards\n{plan}"));
            }
        }
        for (sql, key) in BROADCAST {
            let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
            let (shown, chosen) = if broadcasting {
                (
                    "BroadcastExec",
                    "broadcast (fewer rows than moving the fact table)",
                )
            } else {
                (*key, "moved into shards (broadcasts are off)")
            };
            if !plan.contains(shown) {
                wrong.push(format!("{sql}\n  => not {chosen}\n{plan}"));
            }
        }
    }
    for sql in NOT_ALIGNED {
        let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
        if plan.contains("into shards by") {
            wrong.push(format!(
                "{sql}\n  => routed by shard although its key types hash differently\n{plan}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "[fact {fact_shards} shards, dimensions {dim_shards} shards, {workers} workers, \
         target_partitions {partitions}, broadcasts {broadcasting}] {} problems:\n\n{}",
        wrong.len(),
        wrong.join("\n\n")
    );
    cluster.shutdown().await;
}

async fn bounded(fact_shards: usize, dim_shards: usize, workers: usize) {
    bounded_with(fact_shards, dim_shards, workers, SessionConfig::new()).await;
}

/// [`bounded`], planned with `config`.
async fn bounded_with(
    fact_shards: usize,
    dim_shards: usize,
    workers: usize,
    config: SessionConfig,
) {
    tokio::time::timeout(
        Duration::from_secs(400),
        run_with(fact_shards, dim_shards, workers, config),
    )
    .await
    .expect("the test finishes within 400 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_1_and_32_shards() {
    bounded(1, 32, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_7_shards() {
    bounded(7, 7, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_7_shards_without_broadcasts() {
    bounded_with(7, 7, 2, without_broadcasts(SessionConfig::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_32_and_5_shards_without_broadcasts() {
    bounded_with(32, 5, 2, without_broadcasts(SessionConfig::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_3_workers() {
    bounded_with(7, 2, 3, without_broadcasts(SessionConfig::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_joins_match_single_node_with_1_target_partition() {
    tokio::time::timeout(
        Duration::from_secs(400),
        run_with(7, 5, 2, SessionConfig::new().with_target_partitions(1)),
    )
    .await
    .expect("the test finishes within 400 s");
}

/// One query's answer equals single-node DataFusion's (the plan is shown if not), planned
/// without broadcasts so that its joins move rows between workers.
async fn one_query(fact_shards: usize, dim_shards: usize, sql: &str) {
    one_query_with(fact_shards, dim_shards, sql, false, SessionConfig::new()).await;
}

/// [`one_query`], its rows' order significant if `ordered`, planned with `config`.
async fn one_query_with(
    fact_shards: usize,
    dim_shards: usize,
    sql: &str,
    ordered: bool,
    config: SessionConfig,
) {
    let config = without_broadcasts(config);
    let test = async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start_with_config(2, config).await;
        let mut client = cluster.client().await;
        let single = load(&mut client, dir.path(), fact_shards, dim_shards).await;
        let want = single
            .sql(sql)
            .await
            .expect("single node plans")
            .collect()
            .await
            .expect("single node runs");
        let got = match client.query(sql).await {
            Ok(got) => got,
            Err(status) => {
                let plan = match client.query(&format!("EXPLAIN {sql}")).await {
                    Ok(plan) => rows(&plan).join("\n"),
                    Err(e) => format!("EXPLAIN fails too: {e}"),
                };
                panic!(
                    "{sql}\n  => failed: {:?} {}\n{plan}",
                    status.code(),
                    status.message()
                );
            }
        };
        if let Err(difference) = same(&got, &want, ordered) {
            let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
            panic!(
                "[fact {fact_shards} shards, dimensions {dim_shards} shards] {sql}\n  => \
                 {difference}\n{plan}"
            );
        }
        cluster.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("the test finishes within 120 s");
}

// A LEFT JOIN null-extends the staying side's distribution column for fact rows with no
// match; those rows sit in every shard, so their NULL group must still be merged into one.
// (Before 3a2e7b1 it came back once per worker: 3002 rows for 3001 groups.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_extended_aligned_key_has_one_null_group() {
    one_query(
        7,
        7,
        "SELECT d.k, count(*), sum(f.v) FROM fact f LEFT JOIN dim_int d ON f.k_int = d.k \
         GROUP BY d.k",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_extended_aligned_text_key_has_one_null_group() {
    one_query(
        32,
        5,
        "SELECT t.t, count(*) FROM fact f LEFT JOIN dim_text t ON f.k_text = t.t GROUP BY t.t",
    )
    .await;
}

// The same with a co-located join (both sides distributed by f_id). (Before 3a2e7b1 the NULL
// group came back once per shard: 299 rows at 32 shards for 268 groups.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_extended_colocated_key_has_one_null_group() {
    one_query(
        32,
        5,
        "SELECT g.f_id, count(*) FROM fact f LEFT JOIN fact2 g ON f.f_id = g.f_id \
         WHERE f.f_id % 100 = 0 GROUP BY g.f_id",
    )
    .await;
}

// The staying side (dim_int) is pruned to the shards of k = 84 (or 4 and 84); the moved side
// (fact) is preserved by the join, so every fact row must come out, matched or not. (Before
// 3a2e7b1 its rows routed to the shards nobody read were dropped: 5344 of 40000 at 7 shards.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_staying_side_keeps_left_join_rows() {
    one_query(
        7,
        7,
        "SELECT count(*), count(d.k) FROM fact f LEFT JOIN dim_int d \
         ON f.k_int = d.k AND d.k = 84",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_staying_subquery_keeps_left_join_rows() {
    one_query(
        32,
        5,
        "SELECT count(*), count(d.k) FROM fact f LEFT JOIN \
         (SELECT * FROM dim_int WHERE k IN (4, 84)) d ON f.k_int = d.k",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_staying_side_keeps_anti_join_rows() {
    one_query(
        7,
        7,
        "SELECT count(*) FROM fact f WHERE NOT EXISTS \
         (SELECT 1 FROM dim_int d WHERE d.k = f.k_int AND d.k IN (4, 84))",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_staying_side_keeps_full_join_rows() {
    one_query(
        32,
        5,
        "SELECT count(*), count(f.f_id), count(d.k) FROM (SELECT * FROM dim_int WHERE k = 84) d \
         FULL JOIN fact f ON f.k_int = d.k",
    )
    .await;
}

// No equality filter prunes the staying side's shards here, but its files' min/max may rule
// out some shards for a range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_filtered_staying_side_keeps_left_join_rows() {
    one_query(
        32,
        32,
        "SELECT count(*), count(d.k) FROM fact f LEFT JOIN dim_int d \
         ON f.k_int = d.k AND d.k BETWEEN 80 AND 90",
    )
    .await;
}

// ORDER BY over a shard-aligned join: DataFusion sorts the probe side (fact) below the join,
// which keeps its order, and the coordinator merges the tasks' streams as sorted; but the sort
// runs before the moved side's Range repartition, and each consumer task reads several
// producers and several shards, so its stream is not sorted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_over_an_aligned_join() {
    one_query_with(
        7,
        7,
        "SELECT f.k_int, f.f_id, d.label FROM fact f JOIN dim_int d ON f.k_int = d.k \
         ORDER BY f.k_int, f.f_id",
        true,
        SessionConfig::new(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_over_an_aligned_join_from_one_shard() {
    one_query_with(
        1,
        32,
        "SELECT f.k_int, f.f_id, d.label FROM fact f JOIN dim_int d ON f.k_int = d.k \
         ORDER BY f.k_int, f.f_id",
        true,
        SessionConfig::new(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_over_an_aligned_join_with_one_partition() {
    one_query_with(
        7,
        5,
        "SELECT f.f_id, row_number() OVER (PARTITION BY f.k_int ORDER BY f.f_id), \
         sum(f.v) OVER (PARTITION BY d.label ORDER BY f.f_id) \
         FROM fact f JOIN dim_int d ON f.k_int = d.k",
        false,
        SessionConfig::new().with_target_partitions(1),
    )
    .await;
}

// The same shapes at the default partitions pass (the window's sort sits above the join).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_over_an_aligned_join() {
    one_query_with(
        7,
        5,
        "SELECT f.f_id, row_number() OVER (PARTITION BY f.k_int ORDER BY f.f_id), \
         sum(f.v) OVER (PARTITION BY d.label ORDER BY f.f_id) \
         FROM fact f JOIN dim_int d ON f.k_int = d.k",
        false,
        SessionConfig::new(),
    )
    .await;
}

// Both sides keyed by their distribution columns (fact by f_id, 7 shards; dim_big by b,
// 5 shards), the staying side pruned to one shard, the moved side preserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_distribution_key_left_join_with_one_partition() {
    one_query_with(
        7,
        5,
        "SELECT count(*), count(b.b) FROM fact f LEFT JOIN dim_big b ON f.f_id = b.b AND b.b = 42",
        false,
        SessionConfig::new().with_target_partitions(1),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_distribution_key_left_join() {
    one_query_with(
        7,
        5,
        "SELECT count(*), count(b.b) FROM fact f LEFT JOIN dim_big b ON f.f_id = b.b AND b.b = 42",
        false,
        SessionConfig::new(),
    )
    .await;
}
