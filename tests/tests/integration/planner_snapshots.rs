//! The distributed plan of one query per planner rule, as `EXPLAIN` shows it (the plan that
//! runs), kept as snapshots under `tests/tests/integration/snapshots/`: a change to a rule shows up as a
//! reviewed diff. Worker addresses are replaced by `worker`; everything else (shard ids,
//! stages, partitions) is deterministic on a fresh two-worker cluster. Each query also runs,
//! and its answer is compared with single-node DataFusion on the same rows. The cluster uses
//! the in-process transport: every task, shuffles included, goes to the worker services
//! without a socket.
//!
//! To accept changed plans: `INSTA_UPDATE=always cargo nextest run -p shardfusion-tests --test
//! planner_snapshots`, then review the diff of the `.snap` files.

use std::time::Duration;

use datafusion::prelude::SessionContext;
use shardfusion_tests::compare::{assert_same, rows};
use shardfusion_tests::{TestClient, TestCluster};

/// `(snapshot name, query)`, one per rule.
const PLANS: &[(&str, &str)] = &[
    (
        "router",
        "SELECT id, owner, balance FROM accounts WHERE id = 42",
    ),
    (
        "shard_pruning",
        "SELECT sum(balance) FROM accounts WHERE id IN (1, 2, 3)",
    ),
    (
        "colocated_join",
        "SELECT a.owner, sum(l.amount) FROM accounts a JOIN ledger l ON a.id = l.account \
         GROUP BY a.owner",
    ),
    (
        "reference_join",
        "SELECT b.name, count(*) FROM accounts a JOIN branches b ON a.branch = b.branch \
         GROUP BY b.name",
    ),
    (
        "broadcast_join",
        "SELECT r.rate, count(*) FROM accounts a JOIN rates r ON a.branch = r.branch \
         GROUP BY r.rate",
    ),
    (
        "shard_aligned_join",
        "SELECT a.id, sum(t.amount) FROM accounts a JOIN transfers t ON a.id = t.account \
         GROUP BY a.id",
    ),
    (
        "shuffle_join",
        "SELECT a.branch, count(*) FROM accounts a JOIN transfers t ON a.owner = t.payee \
         GROUP BY a.branch",
    ),
    (
        "repartitioned_aggregate",
        "SELECT owner, count(*), sum(balance) FROM accounts GROUP BY owner",
    ),
    (
        "partial_aggregate",
        "SELECT branch % 3, count(*) FROM accounts GROUP BY branch % 3",
    ),
    (
        "scalar_subquery",
        "SELECT count(*) FROM accounts WHERE balance > (SELECT avg(balance) FROM accounts)",
    ),
    (
        "in_subquery",
        "SELECT count(*) FROM accounts WHERE id IN (SELECT account FROM transfers WHERE amount > 40)",
    ),
    (
        "union_all",
        "SELECT id FROM accounts WHERE id < 5 UNION ALL SELECT t_id FROM transfers WHERE t_id < 5",
    ),
    (
        "window_function",
        "SELECT id, rank() OVER (PARTITION BY branch ORDER BY balance, id) AS r FROM accounts",
    ),
    (
        "window_by_distribution_column",
        "SELECT id, sum(balance) OVER (PARTITION BY id ORDER BY branch) AS s FROM accounts",
    ),
    ("distinct", "SELECT DISTINCT owner FROM accounts"),
    (
        "top_k",
        "SELECT id, balance FROM accounts ORDER BY balance DESC, id LIMIT 5",
    ),
];

/// The same rows on the cluster and in a single-node session.
const SETUP: &[&str] = &[
    "CREATE TABLE accounts (id BIGINT NOT NULL, branch INT, owner TEXT, balance DOUBLE)",
    "SELECT create_distributed_table('accounts', 'id', shard_count => 4)",
    "CREATE TABLE transfers (t_id BIGINT NOT NULL, account BIGINT, payee TEXT, amount DOUBLE)",
    "SELECT create_distributed_table('transfers', 't_id', shard_count => 4)",
    "CREATE TABLE ledger (account BIGINT NOT NULL, entry INT, amount DOUBLE)",
    "SELECT create_distributed_table('ledger', 'account', shard_count => 4)",
    "CREATE TABLE branches (branch INT NOT NULL, name TEXT)",
    "SELECT create_reference_table('branches')",
    "CREATE TABLE rates (branch INT, rate DOUBLE)",
];

const ROWS: &[&str] = &[
    "INSERT INTO accounts SELECT value, CAST(value % 50 AS INT), 'owner' || CAST(value % 700 AS VARCHAR), \
     CAST(value % 997 AS DOUBLE) FROM generate_series(1, 2000)",
    "INSERT INTO transfers SELECT value, (value * 7) % 2100 + 1, 'owner' || CAST(value % 900 AS VARCHAR), \
     CAST(value % 50 AS DOUBLE) FROM generate_series(1, 3000)",
    "INSERT INTO ledger SELECT value % 2000 + 1, CAST(value AS INT), CAST(value % 13 AS DOUBLE) \
     FROM generate_series(1, 4000)",
    "INSERT INTO branches SELECT CAST(value AS INT), 'branch' || CAST(value AS VARCHAR) FROM generate_series(0, 49)",
    "INSERT INTO rates SELECT CAST(value AS INT), CAST(value AS DOUBLE) / 10 FROM generate_series(0, 9)",
];

async fn single_node() -> SessionContext {
    let single = shardfusion_tests::compare::single_node_session();
    for ddl in [
        "CREATE TABLE accounts (id BIGINT NOT NULL, branch INT, owner TEXT, balance DOUBLE)",
        "CREATE TABLE transfers (t_id BIGINT NOT NULL, account BIGINT, payee TEXT, amount DOUBLE)",
        "CREATE TABLE ledger (account BIGINT NOT NULL, entry INT, amount DOUBLE)",
        "CREATE TABLE branches (branch INT NOT NULL, name TEXT)",
        "CREATE TABLE rates (branch INT, rate DOUBLE)",
    ]
    .iter()
    .chain(ROWS)
    {
        single
            .sql(ddl)
            .await
            .expect("single node plans")
            .collect()
            .await
            .expect("single node runs");
    }
    single
}

/// The physical plan of `sql` with worker addresses replaced.
async fn plan_of(client: &mut TestClient, sql: &str) -> String {
    let explained = client.run(&format!("EXPLAIN {sql}")).await;
    let lines = rows(&explained);
    let address = regex::Regex::new(r"127\.0\.0\.1:\d+").expect("regex");
    let mut physical = Vec::new();
    let mut in_physical = false;
    for line in lines {
        if let Some(rest) = line.strip_prefix("physical_plan | ") {
            in_physical = true;
            physical.push(rest.to_string());
        } else if line.starts_with("logical_plan | ") {
            in_physical = false;
        } else if in_physical {
            physical.push(line);
        }
    }
    address
        .replace_all(&physical.join("\n"), "worker")
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_per_rule() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = TestCluster::start_in_process(2).await;
        let mut client = cluster.client().await;
        for sql in SETUP.iter().chain(ROWS) {
            client.run(sql).await;
        }
        let single = single_node().await;
        for (name, sql) in PLANS {
            let plan = plan_of(&mut client, sql).await;
            insta::assert_snapshot!(*name, plan, sql);
            let actual = client.run(sql).await;
            let expected = single
                .sql(sql)
                .await
                .expect("single node plans")
                .collect()
                .await
                .expect("single node runs");
            assert_same(name, &actual, &expected, false);
        }
        cluster.shutdown().await;
    })
    .await
    .expect("the test finishes within 300 s");
}
