//! Aggregates, DISTINCT, grouping sets, window functions, UNION ALL and subqueries over
//! distributed tables, grouped or partitioned by columns other than the distribution column:
//! answers equal single-node DataFusion's at 1, 7 and 32 shards with 2 workers, whether the
//! planner finalizes them on the workers after a shuffle by the group keys (repartitioned
//! aggregates), on the coordinator, or not at all. A many-group GROUP BY sends the coordinator
//! one row per group, not partial states from every worker.

use std::path::Path;
use std::time::Duration;

use arrow::array::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};
use shardfusion_tests::compare::{assert_same, rows, same, single_node_session};
use shardfusion_tests::same_rows::{load_table, rows_received};
use shardfusion_tests::{TestClient, TestCluster};

#[path = "support/shuffled_aggregates_data.rs"]
mod data;
use data::*;

async fn load(client: &mut TestClient, dir: &Path, shards: usize) -> SessionContext {
    let single = single_node_session();
    for (name, ddl, column, batch) in data() {
        let distribute = format!(
            "SELECT create_distributed_table('{name}', '{column}', shard_count => {shards})"
        );
        load_table(client, &single, dir, (name, ddl, Some(&distribute)), &batch).await;
    }
    single
}

async fn expected(single: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    single
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("single node cannot plan {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("single node failed on {sql}: {e}"))
}

/// Every query's answer equals single-node DataFusion's; all differences are reported at once.
async fn answers_match(shards: usize) {
    answers_match_with(shards, SessionConfig::new(), 2).await;
}

/// [`answers_match`] with the coordinator planning with `config` (e.g. another
/// `target_partitions`, which sets how many partitions each shuffle has per worker).
async fn answers_match_with(shards: usize, config: SessionConfig, workers: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let partitions = config.target_partitions();
    let cluster = TestCluster::start_with_config(workers, config).await;
    let mut client = cluster.client().await;
    let single = load(&mut client, dir.path(), shards).await;
    let mut wrong = Vec::new();
    for (sql, ordered) in QUERIES {
        let want = expected(&single, sql).await;
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
    assert!(
        wrong.is_empty(),
        "[{shards} shards, {workers} workers, target_partitions {partitions}] {} of {} queries differ from \
         single-node DataFusion:\n\n{}",
        wrong.len(),
        QUERIES.len(),
        wrong.join("\n\n")
    );
    cluster.shutdown().await;
}

/// A GROUP BY on a non-distribution column with thousands of groups is finalized on the
/// workers: the coordinator receives one row per group, the plan shows the shuffle.
async fn final_rows_only(shards: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    let single = load(&mut client, dir.path(), shards).await;
    for (sql, prefix) in [
        (
            "SELECT user_id, count(*), sum(score) FROM events GROUP BY user_id",
            "SELECT user_id, count(*), sum(score) FROM events",
        ),
        (
            "SELECT name, count(*), max(amount) FROM events GROUP BY name",
            "SELECT name, count(*), max(amount) FROM events",
        ),
        (
            "SELECT user_id, day, count(*) FROM events GROUP BY user_id, day",
            "SELECT user_id, day, count(*) FROM events",
        ),
        (
            "SELECT DISTINCT name, score % 3 FROM events",
            "SELECT DISTINCT name, score",
        ),
    ] {
        let got = client.run(sql).await;
        assert_same(
            &format!("[{shards} shards] {sql}"),
            &got,
            &expected(&single, sql).await,
            false,
        );
        let groups = got.iter().map(|b| b.num_rows()).sum::<usize>() as u64;
        assert!(groups >= 1_000, "{sql}: only {groups} groups");
        let received = rows_received(&mut client, prefix).await;
        let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
        assert_eq!(
            received, groups,
            "[{shards} shards] {sql}: the coordinator received {received} rows for {groups} \
             groups\n{plan}"
        );
        assert!(
            shards == 1 || plan.contains("ShuffleReadExec"),
            "[{shards} shards] {sql}: no shuffle in the plan\n{plan}"
        );
    }
    cluster.shutdown().await;
}

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(400), test)
        .await
        .expect("the test finishes within 400 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_aggregates_match_single_node_with_1_shard() {
    bounded(answers_match(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_aggregates_match_single_node_with_7_shards() {
    bounded(answers_match(7)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_aggregates_match_single_node_with_32_shards() {
    bounded(answers_match(32)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_groups_send_final_rows_only_with_1_shard() {
    bounded(final_rows_only(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_groups_send_final_rows_only_with_7_shards() {
    bounded(final_rows_only(7)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_groups_send_final_rows_only_with_32_shards() {
    bounded(final_rows_only(32)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_aggregates_match_single_node_with_1_target_partition() {
    bounded(answers_match_with(
        7,
        SessionConfig::new().with_target_partitions(1),
        2,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_aggregates_match_single_node_with_5_target_partitions() {
    bounded(answers_match_with(
        32,
        SessionConfig::new().with_target_partitions(5),
        2,
    ))
    .await;
}

/// Many shuffles at once, from several clients, each twice: every answer is its own (each
/// run's producer tasks are told apart on the workers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_shuffles_keep_their_own_rows() {
    bounded(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        let single = load(&mut client, dir.path(), 7).await;
        let queries: Vec<&str> = QUERIES
            .iter()
            .filter(|(sql, ordered)| !ordered && sql.contains("GROUP BY"))
            .map(|(sql, _)| *sql)
            .take(8)
            .collect();
        let mut runs = Vec::new();
        for round in 0..2 {
            for (i, sql) in queries.iter().enumerate() {
                let url = cluster.url.clone();
                let sql = sql.to_string();
                runs.push(tokio::spawn(async move {
                    let mut client = TestClient::connect(&url).await;
                    let got = client.query(&sql).await;
                    (round, i, sql, got)
                }));
            }
        }
        for run in runs {
            let (round, _, sql, got) = run.await.expect("the client task does not panic");
            let got = got.unwrap_or_else(|s| panic!("{sql} (round {round}) failed: {s}"));
            assert_same(
                &format!("{sql} (round {round}, concurrently)"),
                &got,
                &expected(&single, &sql).await,
                false,
            );
        }
        cluster.shutdown().await;
    })
    .await;
}

/// A LIMIT that stops reading a shuffle early, and EXPLAIN ANALYZE of a shuffled aggregate:
/// both answer, and the shuffles they leave behind do not get in the way of the next query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_stops_and_explain_analyze_of_shuffles() {
    bounded(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        let single = load(&mut client, dir.path(), 7).await;
        for sql in [
            "SELECT e.id, u.uid FROM events e JOIN users u ON e.name = u.uname LIMIT 10",
            "SELECT user_id, count(*) FROM events GROUP BY user_id LIMIT 5",
            "SELECT name FROM events GROUP BY name LIMIT 1",
        ] {
            let limit: usize = sql
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("limit");
            let got = tokio::time::timeout(Duration::from_secs(30), client.run(sql))
                .await
                .unwrap_or_else(|_| panic!("{sql} did not answer within 30 s"));
            assert_eq!(
                got.iter().map(|b| b.num_rows()).sum::<usize>(),
                limit,
                "{sql}"
            );
        }
        let sql = "SELECT user_id, count(*), sum(score) FROM events GROUP BY user_id";
        let plan = rows(&client.run(&format!("EXPLAIN ANALYZE {sql}")).await).join("\n");
        assert!(
            plan.contains("ShuffleReadExec") && plan.contains("rows_sent="),
            "EXPLAIN ANALYZE of a shuffled aggregate:\n{plan}"
        );
        for other in [
            "SELECT count(*) FROM events a JOIN events b ON a.amount = b.amount",
            "SELECT u.region, count(*) FROM events e JOIN users u ON e.user_id = u.uid \
             GROUP BY u.region",
            "SELECT id, rank() OVER (PARTITION BY name ORDER BY id) FROM events",
            "SELECT count(*) FROM (SELECT DISTINCT name, day FROM events) d",
        ] {
            let plan = rows(&client.run(&format!("EXPLAIN ANALYZE {other}")).await).join("\n");
            assert!(
                plan.contains("ShuffleReadExec") && plan.contains("rows_sent="),
                "EXPLAIN ANALYZE of a shuffle:\n{plan}"
            );
        }
        let got = tokio::time::timeout(Duration::from_secs(30), client.run(sql))
            .await
            .expect("the next query answers within 30 s");
        assert_same(sql, &got, &expected(&single, sql).await, false);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_aggregates_match_single_node_with_8_target_partitions() {
    bounded(answers_match_with(
        7,
        SessionConfig::new().with_target_partitions(8),
        2,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_aggregates_match_single_node_with_3_workers() {
    bounded(answers_match_with(7, SessionConfig::new(), 3)).await;
}

/// `INSERT ... SELECT` of a shuffled aggregate and of a shuffle join writes their rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_select_of_shuffles_writes_their_rows() {
    bounded(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        let single = load(&mut client, dir.path(), 7).await;
        client
            .run("CREATE TABLE per_user (user_id INT, c BIGINT, total DECIMAL(22, 2))")
            .await;
        client
            .run("SELECT create_distributed_table('per_user', 'user_id', shard_count => 5)")
            .await;
        let select = "SELECT user_id, count(*), sum(amount) FROM events \
                      WHERE user_id IS NOT NULL GROUP BY user_id";
        client.run(&format!("INSERT INTO per_user {select}")).await;
        client
            .run(
                "INSERT INTO per_user SELECT e.score, count(*), sum(e.amount) FROM events e \
                 JOIN users u ON e.name = u.uname WHERE e.score IS NOT NULL GROUP BY e.score",
            )
            .await;
        let got = client.run("SELECT user_id, c, total FROM per_user").await;
        let want = expected(
            &single,
            &format!(
                "{select} UNION ALL SELECT e.score, count(*), sum(e.amount) FROM events e \
                 JOIN users u ON e.name = u.uname WHERE e.score IS NOT NULL GROUP BY e.score"
            ),
        )
        .await;
        assert_same("INSERT ... SELECT of shuffles", &got, &want, false);
        cluster.shutdown().await;
    })
    .await;
}

/// A window partitioned by a non-distribution column, filtered to one row per partition:
/// the issue asks for it to be finalized on the workers after a shuffle by the partition key,
/// so that the coordinator receives the rows that survive the filter, not every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_by_non_distribution_column_sends_final_rows_only() {
    bounded(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        let single = load(&mut client, dir.path(), 7).await;
        let sql = "SELECT user_id, id FROM (SELECT user_id, id, \
                   row_number() OVER (PARTITION BY user_id ORDER BY id) AS r FROM events) x \
                   WHERE r = 1";
        let got = client.run(sql).await;
        assert_same(sql, &got, &expected(&single, sql).await, false);
        let returned = got.iter().map(|b| b.num_rows()).sum::<usize>() as u64;
        let received = rows_received(&mut client, "SELECT user_id, id FROM (SELECT").await;
        let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
        assert!(
            received <= returned,
            "the coordinator received {received} rows for {returned} results:\n{plan}"
        );
        cluster.shutdown().await;
    })
    .await;
}

/// One query at `target_partitions` = 1 (every worker-side exchange has one partition per
/// worker): its answer equals single-node DataFusion's; the plan is shown if not.
async fn one_query_with_one_partition(sql: &str, ordered: bool) {
    one_query_with_one_partition_showing(sql, ordered, "").await;
}

/// [`one_query_with_one_partition`], whose plan must also show `shown`.
async fn one_query_with_one_partition_showing(sql: &str, ordered: bool, shown: &str) {
    bounded(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster =
            TestCluster::start_with_config(2, SessionConfig::new().with_target_partitions(1)).await;
        let mut client = cluster.client().await;
        let single = load(&mut client, dir.path(), 7).await;
        let got = client.run(sql).await;
        let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
        if let Err(difference) = same(&got, &expected(&single, sql).await, ordered) {
            panic!("{sql}\n  => {difference}\n{plan}");
        }
        assert!(
            plan.contains(shown),
            "{sql}: the plan shows no {shown}\n{plan}"
        );
        cluster.shutdown().await;
    })
    .await;
}

// With one target partition DataFusion sorts the join's probe side (events) below the join,
// which keeps its order; a shard-aligned move of that side (into users' shards by user_id)
// then merges several producers' streams, so the rows the window (or ORDER BY) above reads
// are no longer sorted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_over_an_aligned_join_with_one_partition() {
    one_query_with_one_partition(
        "SELECT e.id, row_number() OVER (PARTITION BY e.user_id ORDER BY e.id) \
         FROM events e JOIN users u ON e.user_id = u.uid",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_and_window_over_an_aligned_join_with_one_partition() {
    one_query_with_one_partition(
        "SELECT e.id, u.region, count(*) OVER (PARTITION BY u.region), \
         row_number() OVER (PARTITION BY e.user_id ORDER BY e.id) \
         FROM events e JOIN users u ON e.user_id = u.uid",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_over_an_aligned_join_with_one_partition() {
    one_query_with_one_partition(
        "SELECT e.user_id, e.id, u.region FROM events e JOIN users u ON e.user_id = u.uid \
         ORDER BY e.user_id, e.id",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_over_a_shuffle_join_with_one_partition() {
    one_query_with_one_partition(
        "SELECT e.name, e.id, u.uid FROM events e JOIN users u ON e.name = u.uname \
         ORDER BY e.name, e.id, u.uid",
        true,
    )
    .await;
}

// A self join on `amount` (no distribution column, both sides too large to broadcast) is a
// hash shuffle of both sides; at one target partition DataFusion may sort a side below the
// join as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_over_a_hash_shuffle_with_one_partition() {
    one_query_with_one_partition_showing(
        "SELECT a.amount, a.id, b.id FROM events a JOIN events b ON a.amount = b.amount \
         ORDER BY a.amount, a.id, b.id",
        true,
        "ShuffleReadExec: input=1, hash=",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_over_a_hash_shuffle_with_one_partition() {
    one_query_with_one_partition_showing(
        "SELECT a.id, b.id, row_number() OVER (PARTITION BY a.amount ORDER BY a.id, b.id), \
         sum(b.score) OVER (PARTITION BY a.day ORDER BY a.id, b.id) \
         FROM events a JOIN events b ON a.amount = b.amount",
        false,
        "ShuffleReadExec: input=1, hash=",
    )
    .await;
}
