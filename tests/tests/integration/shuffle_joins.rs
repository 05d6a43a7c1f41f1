//! Joins of two distributed tables on columns that are not both distribution columns run as
//! worker-to-worker shuffles: both sides are hash-partitioned by the join key and streamed
//! between the workers, which join their partitions; the coordinator receives only what the
//! plan above the join needs. Answers equal single-node DataFusion's at 1, 7 and 32 shards.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::StringArray;
use arrow::array::{ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use shardfusion_tests::compare::{assert_same, rows};
use shardfusion_tests::same_rows::{load_table, rows_received};
use shardfusion_tests::{TestClient, TestCluster};

const ACCOUNTS: i64 = 40_000;
const TRANSFERS: i64 = 60_000;

/// `accounts` is distributed by `id`; `transfers` by `t_id`, and refers to accounts through
/// `account` (some refer to no account, some are NULL).
fn data() -> Vec<(&'static str, &'static str, &'static str, RecordBatch)> {
    let accounts = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("branch", DataType::Int32, true),
            Field::new("owner", DataType::Utf8, true),
            Field::new("balance", DataType::Float64, true),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(1..=ACCOUNTS)) as ArrayRef,
            Arc::new(Int32Array::from_iter(
                (1..=ACCOUNTS).map(|i| (i % 29 != 0).then_some((i % 300) as i32)),
            )),
            Arc::new(StringArray::from_iter(
                (1..=ACCOUNTS).map(|i| (i % 31 != 0).then(|| format!("owner{}", i % 7_000))),
            )),
            Arc::new(Float64Array::from_iter_values(
                (1..=ACCOUNTS).map(|i| (i % 997) as f64 * 1.5),
            )),
        ],
    )
    .expect("accounts");
    let transfers = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("t_id", DataType::Int64, false),
            Field::new("account", DataType::Int64, true),
            Field::new("branch", DataType::Int32, true),
            Field::new("payee", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("day", DataType::Date32, true),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(1..=TRANSFERS)) as ArrayRef,
            Arc::new(Int64Array::from_iter((1..=TRANSFERS).map(|i| {
                // Every 23rd transfer has no account; some name accounts that do not exist.
                (i % 23 != 0).then_some((i * 7_919) % (ACCOUNTS + 500) + 1)
            }))),
            Arc::new(Int32Array::from_iter(
                (1..=TRANSFERS).map(|i| (i % 37 != 0).then_some((i % 310) as i32)),
            )),
            Arc::new(StringArray::from_iter(
                (1..=TRANSFERS).map(|i| (i % 41 != 0).then(|| format!("owner{}", i % 9_000))),
            )),
            Arc::new(Float64Array::from_iter(
                (1..=TRANSFERS).map(|i| (i % 19 != 0).then_some((i % 500) as f64 * 0.25)),
            )),
            Arc::new(Date32Array::from_iter_values(
                (1..=TRANSFERS).map(|i| 19_000 + (i % 365) as i32),
            )),
        ],
    )
    .expect("transfers");
    vec![
        (
            "accounts",
            "CREATE TABLE accounts (id BIGINT NOT NULL, branch INT, owner TEXT, balance DOUBLE)",
            "id",
            accounts,
        ),
        (
            "transfers",
            "CREATE TABLE transfers (t_id BIGINT NOT NULL, account BIGINT, branch INT, \
             payee TEXT, amount DOUBLE, day DATE)",
            "t_id",
            transfers,
        ),
    ]
}

/// `(sql, ordered)`: every join here pairs columns that are not both distribution columns.
const QUERIES: &[(&str, bool)] = &[
    // Grouped by the shuffle key: complete on the workers.
    (
        "SELECT a.id, count(*), sum(t.amount) FROM accounts a JOIN transfers t \
         ON a.id = t.account GROUP BY a.id",
        false,
    ),
    (
        "SELECT count(*), sum(t.amount), min(a.balance), max(t.day) FROM accounts a \
         JOIN transfers t ON a.id = t.account",
        false,
    ),
    // Neither side on its distribution column, text keys, NULLs on both sides.
    (
        "SELECT a.owner, count(*), sum(a.balance) FROM accounts a JOIN transfers t \
         ON a.owner = t.payee GROUP BY a.owner",
        false,
    ),
    // Outer, semi and anti joins.
    (
        "SELECT a.branch, count(*), count(t.t_id), sum(t.amount) FROM accounts a \
         LEFT JOIN transfers t ON a.id = t.account GROUP BY a.branch",
        false,
    ),
    (
        "SELECT count(*), count(a.id), count(t.t_id) FROM accounts a \
         FULL JOIN transfers t ON a.id = t.account",
        false,
    ),
    (
        "SELECT t.account, count(*) FROM accounts a RIGHT JOIN transfers t \
         ON a.id = t.account WHERE a.id IS NULL GROUP BY t.account",
        false,
    ),
    (
        "SELECT count(*) FROM accounts a WHERE NOT EXISTS \
         (SELECT 1 FROM transfers t WHERE t.account = a.id)",
        false,
    ),
    (
        "SELECT count(*), sum(balance) FROM accounts a WHERE a.id IN \
         (SELECT account FROM transfers WHERE amount > 100)",
        false,
    ),
    // Two keys, then an aggregate on a column that is not a key.
    (
        "SELECT t.day, count(*) FROM accounts a JOIN transfers t \
         ON a.id = t.account AND a.branch = t.branch GROUP BY t.day",
        false,
    ),
    // A shuffle join whose output is shuffled again for a second join.
    (
        "SELECT a2.branch, count(*) FROM accounts a JOIN transfers t ON a.id = t.account \
         JOIN accounts a2 ON t.branch = a2.branch AND a2.id < 200 GROUP BY a2.branch",
        false,
    ),
    (
        "SELECT a.id, t.t_id, t.amount FROM accounts a JOIN transfers t ON a.id = t.account \
         ORDER BY t.amount DESC NULLS LAST, t.t_id LIMIT 25",
        true,
    ),
];

async fn load(
    client: &mut TestClient,
    dir: &Path,
    shards: usize,
) -> datafusion::prelude::SessionContext {
    let single = shardfusion_tests::compare::single_node_session();
    for (name, ddl, column, batch) in data() {
        let distribute = format!(
            "SELECT create_distributed_table('{name}', '{column}', shard_count => {shards})"
        );
        load_table(client, &single, dir, (name, ddl, Some(&distribute)), &batch).await;
    }
    single
}

async fn run_at(shards: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    let single = load(&mut client, dir.path(), shards).await;
    for (sql, ordered) in QUERIES {
        let actual = client.run(sql).await;
        let expected = single
            .sql(sql)
            .await
            .expect("single node plans")
            .collect()
            .await
            .unwrap_or_else(|e| panic!("single node failed on {sql}: {e}"));
        assert_same(
            &format!("[{shards} shards] {sql}"),
            &actual,
            &expected,
            *ordered,
        );
    }

    // With more than one shard the plan shows the shuffle (one shard of each table lives on
    // one worker, where the join simply runs), and the coordinator receives final groups
    // only.
    let grouped = QUERIES[0].0;
    let plan = rows(&client.run(&format!("EXPLAIN {grouped}")).await).join("\n");
    assert!(
        shards == 1 || plan.contains("ShuffleReadExec"),
        "[{shards} shards] no shuffle in the plan of {grouped}:\n{plan}"
    );
    let groups: u64 = client
        .scalar("SELECT count(DISTINCT a.id) FROM accounts a JOIN transfers t ON a.id = t.account")
        .await
        .parse()
        .expect("number");
    let received = rows_received(&mut client, "SELECT a.id, count(*), sum(t.amount)").await;
    assert_eq!(
        received, groups,
        "[{shards} shards] the coordinator received {received} rows for {groups} groups"
    );
    cluster.shutdown().await;
}

async fn bounded(shards: usize) {
    tokio::time::timeout(Duration::from_secs(300), run_at(shards))
        .await
        .expect("the test finishes within 300 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffle_joins_match_single_node_with_1_shard() {
    bounded(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffle_joins_match_single_node_with_7_shards() {
    bounded(7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffle_joins_match_single_node_with_32_shards() {
    bounded(32).await;
}
