//! Router queries and the plan cache, as a client sees them.
//!
//! - Queries differing only in the values they compare columns with reuse one cached plan
//!   (`generic_plan_calls` in `shardfusion_stat_statements`), and every answer equals
//!   single-node DataFusion's on the same rows — including values that cannot take the
//!   column's type, which are planned from the text as before.
//! - A statement pinned to one shard group (equality or `IN` on the distribution column,
//!   through a join of co-located tables) runs whole on one worker: join, aggregate, window,
//!   sort and limit are in the one task's fragment.
//! - The cache never outlives the catalog it was planned on: DDL, a table distributed after
//!   it was queried (its rows moved into shards), and new rows are seen by the very next run
//!   of a cached shape.

use std::time::Duration;

use datafusion::prelude::SessionContext;
use shardfusion_tests::TestClient;
use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::{assert_same, rows, single_node_answer, single_node_session};
use shardfusion_tests::same_rows::load_table;

const ACCOUNTS: &str = "SELECT value AS id, CAST(value % 7 AS INT) AS tenant, \
    'account ' || value AS name, CAST(value * 1.25 AS DECIMAL(12, 2)) AS balance, \
    CAST(DATE '2024-01-01' + CAST(value % 300 AS INT) AS DATE) AS opened \
    FROM generate_series(1, 2000) AS s(value)";

const PAYMENTS: &str = "SELECT value % 2000 + 1 AS account_id, value AS payment_id, \
    CAST(value % 97 AS DECIMAL(12, 2)) AS amount, \
    CAST(DATE '2024-01-01' + CAST(value % 365 AS INT) AS DATE) AS paid \
    FROM generate_series(1, 20000) AS s(value)";

async fn load(client: &mut TestClient, single: &SessionContext, dir: &std::path::Path) {
    for (name, select, ddl, distribute) in [
        (
            "accounts",
            ACCOUNTS,
            "CREATE TABLE accounts (id BIGINT NOT NULL, tenant INT, name TEXT, \
             balance DECIMAL(12, 2), opened DATE)",
            "SELECT create_distributed_table('accounts', 'id', shard_count => 8)",
        ),
        (
            "payments",
            PAYMENTS,
            "CREATE TABLE payments (account_id BIGINT NOT NULL, payment_id BIGINT, \
             amount DECIMAL(12, 2), paid DATE)",
            "SELECT create_distributed_table('payments', 'account_id', \
             colocate_with => 'accounts')",
        ),
    ] {
        let generated = SessionContext::new()
            .sql(select)
            .await
            .expect("generate rows")
            .collect()
            .await
            .expect("rows");
        let batch =
            arrow::compute::concat_batches(&generated[0].schema(), &generated).expect("one batch");
        load_table(client, single, dir, (name, ddl, Some(distribute)), &batch).await;
    }
}

async fn check(client: &mut TestClient, single: &SessionContext, sql: &str, ordered: bool) {
    let actual = client
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let expected = single_node_answer(single, sql).await;
    assert_same(sql, &actual, &expected, ordered);
    let names = |batches: &[arrow::array::RecordBatch]| {
        batches.first().map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        })
    };
    if let (Some(actual), Some(expected)) = (names(&actual), names(&expected)) {
        assert_eq!(actual, expected, "{sql}: the column names");
    }
}

/// Runs and plans counted for the statements whose normalized text starts with `prefix`.
async fn plan_calls(client: &mut TestClient, prefix: &str) -> (i64, i64) {
    let sql = format!(
        "SELECT sum(generic_plan_calls), sum(custom_plan_calls) FROM shardfusion_stat_statements \
         WHERE starts_with(query, '{prefix}')"
    );
    let row = rows(&client.run(&sql).await).remove(0);
    let (generic, custom) = row.split_once(" | ").expect("two columns");
    (generic.parse().unwrap_or(0), custom.parse().unwrap_or(0))
}

async fn explain(client: &mut TestClient, sql: &str) -> String {
    rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_shapes_reuse_one_plan_and_answer_as_datafusion_does() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        let single = single_node_session();
        let dir = tempfile::tempdir().expect("temp dir");
        load(&mut client, &single, dir.path()).await;

        for id in (1..=1999).step_by(97) {
            let sql = format!("SELECT name, balance, opened FROM accounts WHERE id = {id}");
            check(&mut client, &single, &sql, false).await;
        }
        let (generic, custom) =
            plan_calls(&mut client, "SELECT name, balance, opened FROM accounts WHERE id =").await;
        assert_eq!((generic, custom), (21, 0), "every run reused the shape's plan");

        // Ranges, IN lists, dates and decimals given as text or numbers, values the column's
        // type cannot hold exactly (planned from their text, as DataFusion would).
        for sql in [
            "SELECT id FROM accounts WHERE tenant = 3 AND balance BETWEEN 10 AND 60 ORDER BY id",
            "SELECT id FROM accounts WHERE tenant = 4 AND balance BETWEEN 100.5 AND 160 ORDER BY id",
            "SELECT id FROM accounts WHERE tenant = 3000000000 ORDER BY id",
            "SELECT id FROM accounts WHERE balance = 1.255 ORDER BY id",
            "SELECT id FROM accounts WHERE balance = 12.5 ORDER BY id",
            "SELECT count(*) FROM accounts WHERE opened = '2024-02-01'",
            "SELECT count(*) FROM accounts WHERE opened >= '2024-10-01' AND tenant IN (1, 2)",
            "SELECT count(*) FROM accounts WHERE opened >= '2024-03-01' AND tenant IN (5, 6)",
            "SELECT id, name FROM accounts WHERE id IN (5, 17, 1999, 123456) ORDER BY id",
            "SELECT id, name FROM accounts WHERE id IN (6, 18, 1998, 654321) ORDER BY id",
            "SELECT id FROM accounts WHERE name = 'account 77'",
            "SELECT id FROM accounts WHERE name < 'account 11' ORDER BY id",
            "SELECT id, tenant = 3, balance > 100, 'x' = name FROM accounts WHERE id = 5",
            "SELECT a.id, count(*) FROM accounts a JOIN payments p ON p.account_id = a.id \
             AND p.amount > 50 WHERE a.id IN (3, 4) GROUP BY a.id HAVING count(*) > 1 ORDER BY 1",
        ] {
            check(&mut client, &single, sql, true).await;
        }
        let bad_date = client
            .query("SELECT count(*) FROM accounts WHERE opened = 'not a date'")
            .await;
        assert!(bad_date.is_err(), "an invalid date is an error, as in DataFusion");
        // Integers against a decimal reuse the shape; a float against a decimal is compared
        // as floats by DataFusion, so it is planned from its text.
        let (generic, custom) = plan_calls(
            &mut client,
            "SELECT id FROM accounts WHERE tenant = $1 AND balance BETWEEN",
        )
        .await;
        assert_eq!((generic, custom), (1, 1));

        // Functions whose value changes between runs are never cached.
        client.run("SELECT id, now() FROM accounts WHERE id = 1").await;
        client.run("SELECT id, now() FROM accounts WHERE id = 2").await;
        let (generic, custom) = plan_calls(&mut client, "SELECT id, now() FROM accounts").await;
        assert_eq!((generic, custom), (0, 2));
    })
    .await
    .expect("the test finishes within 180 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statements_pinned_to_one_shard_group_run_whole_on_one_worker() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        let single = single_node_session();
        let dir = tempfile::tempdir().expect("temp dir");
        load(&mut client, &single, dir.path()).await;

        // Two keys of one shard, for an IN list that still pins one shard group.
        let shard_of =
            |key: i64| format!("SELECT get_shard_id_for_distribution_column('accounts', {key})");
        let first = client.scalar(&shard_of(7)).await;
        let mut partner = None;
        for key in 8..200 {
            if client.scalar(&shard_of(key)).await == first {
                partner = Some(key);
                break;
            }
        }
        let partner = partner.expect("another key in shard of 7");

        let pinned = [
            "SELECT a.name, sum(p.amount) AS total, count(*) FROM accounts a \
             JOIN payments p ON a.id = p.account_id WHERE a.id = 7 \
             GROUP BY a.name ORDER BY total DESC LIMIT 3"
                .to_string(),
            "SELECT payment_id, paid, row_number() OVER (ORDER BY paid, payment_id) AS n, \
             sum(amount) OVER (ORDER BY paid, payment_id) AS running FROM payments \
             WHERE account_id = 7 ORDER BY n LIMIT 5"
                .to_string(),
            format!(
                "SELECT p.account_id, count(*), max(p.paid) FROM payments p \
                 JOIN accounts a ON p.account_id = a.id \
                 WHERE p.account_id IN (7, {partner}) GROUP BY p.account_id ORDER BY 1"
            ),
            "SELECT DISTINCT tenant FROM accounts WHERE id = 7".to_string(),
        ];
        for sql in &pinned {
            check(&mut client, &single, sql, true).await;
            let plan = explain(&mut client, sql).await;
            let physical = plan
                .split("physical_plan")
                .nth(1)
                .unwrap_or_else(|| panic!("a physical plan:\n{plan}"));
            let first_operator = physical.trim_start_matches([' ', '|']).trim_start();
            assert!(
                first_operator.starts_with("DistributedExec"),
                "the whole statement runs on the worker:\n{plan}"
            );
            assert_eq!(
                physical.matches("DistributedExec").count(),
                1,
                "one stage:\n{plan}"
            );
            assert_eq!(physical.matches("node ").count(), 1, "one task:\n{plan}");
        }

        // Two keys in different shards are not pinned: the coordinator merges.
        let spread = "SELECT count(*) FROM accounts WHERE id IN (1, 2, 3, 4, 5, 6)";
        check(&mut client, &single, spread, false).await;
    })
    .await
    .expect("the test finishes within 180 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_shapes_see_ddl_moved_shards_and_new_rows() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        client
            .run("CREATE TABLE items (id BIGINT NOT NULL, name TEXT)")
            .await;
        client
            .run("INSERT INTO items SELECT v, 'item ' || v FROM generate_series(1, 100) t(v)")
            .await;
        let shape = |id: i64| format!("SELECT * FROM items WHERE id = {id}");
        assert_eq!(rows(&client.run(&shape(1)).await), ["1 | item 1"]);

        // DDL: a new column appears in the very next run of the shape.
        client
            .run("ALTER TABLE items ADD COLUMN price DOUBLE")
            .await;
        assert_eq!(rows(&client.run(&shape(2)).await), ["2 | item 2 | NULL"]);

        // The rows move into shards on the workers: the same shape is now routed there.
        client
            .run("SELECT create_distributed_table('items', 'id', shard_count => 4)")
            .await;
        assert_eq!(rows(&client.run(&shape(3)).await), ["3 | item 3 | NULL"]);
        let plan = explain(&mut client, &shape(3)).await;
        assert!(
            plan.contains("DistributedExec"),
            "routed to a worker:\n{plan}"
        );

        // New rows, then the table dropped and created again with other types.
        client
            .run("INSERT INTO items VALUES (101, 'new', 15)")
            .await;
        let row = rows(&client.run(&shape(101)).await).join("\n");
        let price: Vec<&str> = row.split(" | ").collect();
        assert_eq!(price[..2], ["101", "new"], "{row}");
        assert_eq!(price[2].parse::<f64>().ok(), Some(15.0), "{row}");
        client.run("DROP TABLE items").await;
        assert!(
            client.query(&shape(1)).await.is_err(),
            "a dropped table is gone"
        );
        client
            .run("CREATE TABLE items (id INT NOT NULL, label TEXT, qty SMALLINT)")
            .await;
        client.run("INSERT INTO items VALUES (1, 'again', 3)").await;
        assert_eq!(rows(&client.run(&shape(1)).await), ["1 | again | 3"]);

        // Five runs from the shape's plan; the run on the dropped table failed to plan.
        let (generic, custom) = plan_calls(&mut client, "SELECT * FROM items WHERE id =").await;
        assert_eq!((generic, custom), (5, 1));
    })
    .await
    .expect("the test finishes within 180 s");
}
