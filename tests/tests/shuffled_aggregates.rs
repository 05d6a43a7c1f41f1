//! Aggregates, DISTINCT, grouping sets, window functions, UNION ALL and subqueries over
//! distributed tables, grouped or partitioned by columns other than the distribution column:
//! answers equal single-node DataFusion's at 1, 7 and 32 shards with 2 workers, whether the
//! planner finalizes them on the workers after a shuffle by the group keys (repartitioned
//! aggregates), on the coordinator, or not at all. A many-group GROUP BY sends the coordinator
//! one row per group, not partial states from every worker.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{SessionConfig, SessionContext};
use shardfusion_tests::compare::{assert_same, rows, same, single_node_session};
use shardfusion_tests::same_rows::{load_table, rows_received};
use shardfusion_tests::{TestClient, TestCluster};

const EVENTS: i64 = 60_000;
const USERS: i64 = 4_000;

/// `events` is distributed by `id`; `user_id` (about 3,000 values and NULLs), `name` (about
/// 2,000 values and NULLs), `day` (365 values), `score` and `amount` are not distribution
/// columns. `users` is distributed by `uid` (some users have no events, some events name no
/// user); `age` has NULLs.
fn data() -> Vec<(&'static str, &'static str, &'static str, RecordBatch)> {
    let events = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("user_id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
            Field::new("score", DataType::Int32, true),
            Field::new("amount", DataType::Decimal128(12, 2), true),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(1..=EVENTS)) as ArrayRef,
            Arc::new(Int32Array::from_iter(
                (1..=EVENTS).map(|i| (i % 53 != 0).then_some(((i * 7_919) % 3_000) as i32)),
            )),
            Arc::new(StringArray::from_iter((1..=EVENTS).map(|i| {
                (i % 47 != 0).then(|| format!("name{}", (i * 31) % 2_000))
            }))),
            Arc::new(Date32Array::from_iter(
                (1..=EVENTS).map(|i| (i % 101 != 0).then_some(19_000 + (i % 365) as i32)),
            )),
            Arc::new(Int32Array::from_iter(
                (1..=EVENTS).map(|i| (i % 13 != 0).then_some((i % 1_000) as i32 - 300)),
            )),
            Arc::new(
                Decimal128Array::from_iter(
                    (1..=EVENTS)
                        .map(|i| (i % 17 != 0).then_some(((i * 37) % 100_000) as i128 - 20_000)),
                )
                .with_precision_and_scale(12, 2)
                .expect("decimal"),
            ),
        ],
    )
    .expect("events");
    let users = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("uid", DataType::Int32, false),
            Field::new("region", DataType::Utf8, true),
            Field::new("age", DataType::Int32, true),
            Field::new("uname", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int32Array::from_iter_values(0..USERS as i32)) as ArrayRef,
            Arc::new(StringArray::from_iter(
                (0..USERS).map(|i| (i % 11 != 0).then(|| format!("region{}", i % 150))),
            )),
            Arc::new(Int32Array::from_iter(
                (0..USERS).map(|i| (i % 9 != 0).then_some((i % 90) as i32 - 300)),
            )),
            Arc::new(StringArray::from_iter((0..USERS).map(|i| {
                (i % 7 != 0).then(|| format!("name{}", (i * 3) % 2_500))
            }))),
        ],
    )
    .expect("users");
    vec![
        (
            "events",
            "CREATE TABLE events (id BIGINT NOT NULL, user_id INT, name TEXT, day DATE, \
             score INT, amount DECIMAL(12, 2))",
            "id",
            events,
        ),
        (
            "users",
            "CREATE TABLE users (uid INT NOT NULL, region TEXT, age INT, uname TEXT)",
            "uid",
            users,
        ),
    ]
}

/// `(sql, ordered)`: nothing here groups or partitions by a distribution column alone.
const QUERIES: &[(&str, bool)] = &[
    // Many groups of one key: ints (with a NULL group), text, dates.
    (
        "SELECT user_id, count(*), sum(amount), min(day), max(name), sum(score) FROM events \
         GROUP BY user_id",
        false,
    ),
    (
        "SELECT name, count(*), avg(amount), min(score), max(amount) FROM events GROUP BY name",
        false,
    ),
    (
        "SELECT day, count(*), count(name), sum(score) FROM events GROUP BY day",
        false,
    ),
    // Several keys, NULLs in each, and an expression key.
    (
        "SELECT user_id, day, count(*), sum(amount) FROM events GROUP BY user_id, day",
        false,
    ),
    (
        "SELECT name, score % 7, count(*) FROM events GROUP BY name, score % 7",
        false,
    ),
    (
        "SELECT user_id % 500 AS bucket, count(*), max(amount) FROM events \
         GROUP BY user_id % 500",
        false,
    ),
    // HAVING, and ORDER BY + LIMIT above the groups.
    (
        "SELECT user_id, count(*), sum(score) FROM events GROUP BY user_id \
         HAVING count(*) > 20 AND sum(score) > 1000",
        false,
    ),
    (
        "SELECT user_id, sum(score) AS s FROM events GROUP BY user_id \
         ORDER BY s DESC NULLS LAST, user_id NULLS FIRST LIMIT 15",
        true,
    ),
    (
        "SELECT name, count(*) AS c FROM events GROUP BY name ORDER BY c DESC, name LIMIT 7 OFFSET 3",
        true,
    ),
    // Whole results ordered above shuffled groups, windows and joins (no LIMIT).
    (
        "SELECT user_id, count(*), sum(score) FROM events GROUP BY user_id ORDER BY user_id",
        true,
    ),
    (
        "SELECT name, day, count(*) FROM events GROUP BY name, day ORDER BY day DESC, name",
        true,
    ),
    (
        "SELECT DISTINCT name FROM events ORDER BY name NULLS FIRST",
        true,
    ),
    (
        "SELECT id, rank() OVER (PARTITION BY user_id ORDER BY id) AS r FROM events \
         ORDER BY r DESC, id",
        true,
    ),
    (
        "SELECT a.amount, a.id, b.id FROM events a JOIN events b ON a.amount = b.amount \
         ORDER BY a.amount, a.id, b.id",
        true,
    ),
    // Distinct aggregates and DISTINCT.
    (
        "SELECT user_id, count(DISTINCT name), count(DISTINCT day) FROM events GROUP BY user_id",
        false,
    ),
    (
        "SELECT day, count(DISTINCT user_id), sum(DISTINCT score) FROM events GROUP BY day",
        false,
    ),
    (
        "SELECT count(DISTINCT user_id), count(DISTINCT name), count(DISTINCT day) FROM events",
        false,
    ),
    ("SELECT DISTINCT name FROM events", false),
    ("SELECT DISTINCT user_id, day FROM events", false),
    (
        "SELECT count(*) FROM (SELECT DISTINCT user_id, name FROM events) d",
        false,
    ),
    (
        "SELECT day, approx_distinct(user_id), approx_distinct(name) FROM events GROUP BY day",
        false,
    ),
    (
        "SELECT user_id, array_agg(id ORDER BY id DESC) FROM events WHERE id % 7 = 0 \
         GROUP BY user_id",
        false,
    ),
    (
        "SELECT name, array_agg(DISTINCT score ORDER BY score) FROM events WHERE id % 5 = 0 \
         GROUP BY name",
        false,
    ),
    // Statistics of decimals.
    (
        "SELECT name, stddev(amount), var_samp(amount), var_pop(amount), avg(amount) \
         FROM events GROUP BY name",
        false,
    ),
    (
        "SELECT day, stddev_pop(amount), avg(amount), sum(amount) FROM events GROUP BY day",
        false,
    ),
    // Grouping sets, rollup, cube: right whether or not they are repartitioned.
    (
        "SELECT user_id, day, count(*), sum(amount) FROM events \
         GROUP BY ROLLUP (user_id, day)",
        false,
    ),
    (
        "SELECT name, score % 3 AS m, count(*) FROM events GROUP BY CUBE (name, score % 3)",
        false,
    ),
    (
        "SELECT user_id, day, name, count(*), grouping(user_id), grouping(day) FROM events \
         GROUP BY GROUPING SETS ((user_id), (day), (name, day), ())",
        false,
    ),
    // Window functions partitioned by a column that is not the distribution column.
    (
        "SELECT id, user_id, rank() OVER (PARTITION BY user_id ORDER BY amount DESC NULLS LAST, id), \
         row_number() OVER (PARTITION BY user_id ORDER BY id) FROM events",
        false,
    ),
    (
        "SELECT id, day, sum(score) OVER (PARTITION BY day), \
         sum(amount) OVER (PARTITION BY day ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) \
         FROM events",
        false,
    ),
    (
        "SELECT name, total, dense_rank() OVER (ORDER BY total DESC) FROM \
         (SELECT name, sum(score) AS total FROM events GROUP BY name) g",
        false,
    ),
    (
        "SELECT user_id, c FROM (SELECT user_id, count(*) AS c, \
         row_number() OVER (PARTITION BY user_id % 10 ORDER BY count(*) DESC, user_id) AS r \
         FROM events GROUP BY user_id) g WHERE r <= 3",
        false,
    ),
    // More windows: several partition keys in one query, NULL and expression keys, few
    // partitions, no partition at all, frames, offsets, windows over joins and aggregates.
    (
        "SELECT id, rank() OVER (PARTITION BY user_id ORDER BY id), \
         count(*) OVER (PARTITION BY day), max(score) OVER (PARTITION BY name, day) FROM events",
        false,
    ),
    (
        "SELECT id, lag(score, 2) OVER (PARTITION BY name ORDER BY id), \
         lead(amount) OVER (PARTITION BY name ORDER BY id), \
         first_value(id) OVER (PARTITION BY name ORDER BY score NULLS FIRST, id), \
         nth_value(id, 3) OVER (PARTITION BY name ORDER BY id) FROM events",
        false,
    ),
    (
        "SELECT id, ntile(4) OVER (PARTITION BY score % 3 ORDER BY id), \
         percent_rank() OVER (PARTITION BY score % 3 ORDER BY amount, id), \
         cume_dist() OVER (PARTITION BY score % 3 ORDER BY day, id) FROM events",
        false,
    ),
    (
        "SELECT id, sum(score) OVER (PARTITION BY user_id % 7, day ORDER BY id \
         RANGE BETWEEN 1000 PRECEDING AND CURRENT ROW) FROM events",
        false,
    ),
    (
        "SELECT id, row_number() OVER (ORDER BY amount DESC NULLS LAST, id) FROM events \
         WHERE id % 10 = 0",
        false,
    ),
    (
        "SELECT id, user_id, row_number() OVER (PARTITION BY id ORDER BY user_id), \
         sum(score) OVER (PARTITION BY user_id) FROM events",
        false,
    ),
    (
        "SELECT day, c, rank() OVER (PARTITION BY c ORDER BY day) FROM \
         (SELECT day, count(*) AS c FROM events GROUP BY day) g",
        false,
    ),
    (
        "SELECT name, score, r FROM (SELECT name, score, \
         dense_rank() OVER (PARTITION BY name ORDER BY score DESC NULLS LAST) AS r FROM events) x \
         WHERE r <= 2 AND name IS NOT NULL",
        false,
    ),
    // UNION ALL of shuffled queries.
    (
        "SELECT user_id AS k, count(*) FROM events GROUP BY user_id \
         UNION ALL SELECT score, count(*) FROM events GROUP BY score \
         UNION ALL SELECT age, count(*) FROM users GROUP BY age",
        false,
    ),
    (
        "SELECT k, sum(c) FROM (SELECT user_id AS k, count(*) AS c FROM events GROUP BY user_id \
         UNION ALL SELECT uid, 1 FROM users) u GROUP BY k",
        false,
    ),
    (
        "SELECT name FROM events UNION SELECT uname FROM users",
        false,
    ),
    // Joins on non-distribution columns, then grouped by other columns again.
    (
        "SELECT u.region, count(*), sum(e.amount) FROM events e JOIN users u \
         ON e.user_id = u.uid GROUP BY u.region",
        false,
    ),
    (
        "SELECT e.day, u.region, count(*) FROM events e JOIN users u ON e.name = u.uname \
         GROUP BY e.day, u.region",
        false,
    ),
    (
        "SELECT u.age, count(DISTINCT e.user_id) FROM events e JOIN users u ON e.score = u.age \
         GROUP BY u.age",
        false,
    ),
    // Subqueries: IN / EXISTS / NOT EXISTS, and NOT IN, which is null-aware.
    (
        "SELECT count(*), sum(score) FROM events WHERE user_id IN \
         (SELECT uid FROM users WHERE region LIKE 'region1%')",
        false,
    ),
    (
        "SELECT count(*) FROM events e WHERE EXISTS \
         (SELECT 1 FROM users u WHERE u.uname = e.name AND u.age > -250)",
        false,
    ),
    (
        "SELECT count(*) FROM users u WHERE NOT EXISTS \
         (SELECT 1 FROM events e WHERE e.user_id = u.uid)",
        false,
    ),
    // events.user_id holds NULLs: NOT IN is never true.
    (
        "SELECT count(*) FROM users WHERE uid NOT IN (SELECT user_id FROM events)",
        false,
    ),
    (
        "SELECT count(*) FROM users WHERE uid NOT IN \
         (SELECT user_id FROM events WHERE user_id IS NOT NULL)",
        false,
    ),
    // users.age holds NULLs; neither side is a distribution column.
    (
        "SELECT count(*) FROM events WHERE score NOT IN (SELECT age FROM users)",
        false,
    ),
    (
        "SELECT count(*), count(score) FROM events WHERE score NOT IN \
         (SELECT age FROM users WHERE age IS NOT NULL)",
        false,
    ),
    (
        "SELECT name, count(*) FROM events WHERE name NOT IN \
         (SELECT uname FROM users WHERE uname IS NOT NULL) GROUP BY name",
        false,
    ),
    // Scalar subqueries in the WHERE of a join of two distributed tables.
    (
        "SELECT count(*), sum(e.amount) FROM events e JOIN users u ON e.name = u.uname \
         WHERE e.amount > (SELECT avg(amount) FROM events)",
        false,
    ),
    (
        "SELECT u.region, count(*) FROM events e JOIN users u ON e.user_id = u.uid \
         WHERE e.score > (SELECT avg(age) FROM users) \
         AND e.day < (SELECT max(day) - 100 FROM events) GROUP BY u.region",
        false,
    ),
    // A correlated scalar subquery: decorrelated into a join with an aggregate by user_id.
    (
        "SELECT count(*) FROM events e WHERE e.score > \
         (SELECT avg(e2.score) FROM events e2 WHERE e2.user_id = e.user_id)",
        false,
    ),
    // Shuffled aggregates feeding joins and other aggregates.
    (
        "SELECT u.region, sum(g.c), count(*) FROM (SELECT user_id, count(*) AS c FROM events \
         GROUP BY user_id) g JOIN users u ON g.user_id = u.uid GROUP BY u.region",
        false,
    ),
    (
        "SELECT count(*), sum(a.c * b.c) FROM (SELECT user_id, count(*) AS c FROM events \
         GROUP BY user_id) a JOIN (SELECT age, count(*) AS c FROM users GROUP BY age) b \
         ON a.user_id = b.age",
        false,
    ),
    (
        "SELECT c, count(*) FROM (SELECT user_id, count(*) AS c FROM events GROUP BY user_id) g \
         GROUP BY c",
        false,
    ),
    (
        "SELECT user_id, count(*), count(name) FROM (SELECT user_id, name FROM events \
         GROUP BY user_id, name) x GROUP BY user_id",
        false,
    ),
    (
        "SELECT g.user_id, g.c, u.region FROM (SELECT user_id, count(*) AS c FROM events \
         GROUP BY user_id) g LEFT JOIN users u ON g.user_id = u.uid",
        false,
    ),
    (
        "SELECT g.name, g.c, x.c FROM (SELECT name, count(*) AS c FROM events GROUP BY name) g \
         FULL JOIN (SELECT uname, count(*) AS c FROM users GROUP BY uname) x ON g.name = x.uname",
        false,
    ),
    // Outer shuffle joins grouped by a key they null-extend.
    (
        "SELECT u.uname, count(*) FROM events e LEFT JOIN users u ON e.name = u.uname \
         GROUP BY u.uname",
        false,
    ),
    (
        "SELECT e.name, count(*), count(u.uid) FROM events e RIGHT JOIN users u \
         ON e.name = u.uname GROUP BY e.name",
        false,
    ),
    (
        "SELECT e.score, u.age, count(*) FROM events e FULL JOIN users u ON e.score = u.age \
         GROUP BY e.score, u.age",
        false,
    ),
    // Self joins, non-equi conditions, expression keys.
    (
        "SELECT count(*), sum(a.score) FROM events a JOIN events b ON a.name = b.name \
         AND a.id < b.id WHERE a.id % 10 = 0",
        false,
    ),
    (
        "SELECT count(*) FROM events e JOIN users u ON e.name = u.uname AND e.score > u.age",
        false,
    ),
    (
        "SELECT count(*), sum(e.score) FROM events e JOIN users u \
         ON CAST(e.score AS BIGINT) = CAST(u.age AS BIGINT) + 1",
        false,
    ),
    // Empty input, and a GROUP BY whose every key is NULL.
    (
        "SELECT user_id, count(*) FROM events WHERE score > 100000 GROUP BY user_id",
        false,
    ),
    (
        "SELECT count(*), count(DISTINCT name) FROM events e JOIN users u \
         ON e.name = u.uname WHERE u.age > 100000",
        false,
    ),
    (
        "SELECT name, count(*) FROM events WHERE name IS NULL GROUP BY name",
        false,
    ),
    // More aggregate functions over shuffled groups.
    (
        "SELECT user_id, first_value(id ORDER BY id), last_value(score ORDER BY id), \
         count(*) FILTER (WHERE score > 0) FROM events GROUP BY user_id",
        false,
    ),
    (
        "SELECT day, median(score), bool_or(score > 600), bit_xor(score) FROM events GROUP BY day",
        false,
    ),
    (
        "SELECT day, string_agg(name, ',' ORDER BY id) FROM events WHERE id % 50 = 0 \
         GROUP BY day",
        false,
    ),
    (
        "SELECT DISTINCT ON (user_id) user_id, id, score FROM events ORDER BY user_id, id",
        true,
    ),
    // A window over a shuffle join, and NOT IN over a join.
    (
        "SELECT e.id, u.region, rank() OVER (PARTITION BY u.region ORDER BY e.score DESC NULLS LAST, e.id) \
         FROM events e JOIN users u ON e.name = u.uname WHERE e.id % 20 = 0",
        false,
    ),
    (
        "SELECT count(*) FROM users u WHERE u.uname NOT IN \
         (SELECT e.name FROM events e JOIN users u2 ON e.user_id = u2.uid WHERE u2.age > 0)",
        false,
    ),
];

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
