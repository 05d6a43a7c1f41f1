//! `UPDATE` and `DELETE` on distributed, reference and local tables, as a client sees them:
//! the rows affected, the table's rows afterwards (compared with single-node DataFusion
//! computing the same change), a filter on the distribution column touching one shard only,
//! refusals that change nothing (the distribution column, a NOT NULL column set to NULL), and
//! concurrent updates of one row that never lose a write.

use std::collections::BTreeSet;
use std::time::Duration;

use datafusion::prelude::SessionContext;
use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::{assert_same, rows};
use shardfusion_tests::conflict::is_retryable_conflict;
use shardfusion_tests::shard_files::cluster_files_in_catalog;
use tonic::Code;

/// The accounts before any change; loaded in three statements, so shards hold several files.
const ACCOUNTS: [&str; 3] = [
    "SELECT CAST(v AS BIGINT) AS id, CAST(v % 7 AS BIGINT) AS plan, CAST(v * 10 AS BIGINT) \
     AS balance, 'owner ' || v AS owner FROM generate_series(1, 1000) t(v)",
    "SELECT CAST(v AS BIGINT) AS id, CAST(v % 7 AS BIGINT) AS plan, CAST(v * 10 AS BIGINT) \
     AS balance, 'owner ' || v AS owner FROM generate_series(1001, 2500) t(v)",
    "SELECT CAST(v AS BIGINT) AS id, CAST(v % 7 AS BIGINT) AS plan, CAST(v * 10 AS BIGINT) \
     AS balance, NULL AS owner FROM generate_series(2501, 3000) t(v)",
];

async fn single_node(
    ctx: &SessionContext,
    sql: &str,
) -> Vec<datafusion::arrow::array::RecordBatch> {
    ctx.sql(sql)
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs")
}

/// The one count `sql` returns in single-node DataFusion.
async fn count(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = single_node(ctx, sql).await;
    rows(&batches)
        .first()
        .and_then(|r| r.parse().ok())
        .expect("a count")
}

/// The shard directories (`shards/t<table>/s<shard>`) of the files that differ.
fn changed_shards(before: &[String], after: &[String]) -> BTreeSet<String> {
    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) =
        (before.iter().collect(), after.iter().collect());
    a.symmetric_difference(&b)
        .filter_map(|path| path.rsplit_once('/').map(|(dir, _)| dir.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn update_and_delete_change_exactly_the_rows_they_select() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE accounts (id BIGINT NOT NULL, plan BIGINT NOT NULL, \
             balance BIGINT NOT NULL, owner TEXT)",
        )
        .await;
        c.run("SELECT create_distributed_table('accounts', 'id', shard_count => 4)")
            .await;
        for batch in ACCOUNTS {
            c.run(&format!("INSERT INTO accounts {batch}")).await;
        }
        c.run("CREATE TABLE plans (plan BIGINT NOT NULL, name TEXT NOT NULL)")
            .await;
        c.run("SELECT create_reference_table('plans')").await;
        c.run("INSERT INTO plans SELECT v, 'plan ' || v FROM generate_series(0, 6) t(v)")
            .await;
        c.run("CREATE TABLE notes (id BIGINT NOT NULL, body TEXT)")
            .await;
        c.run("INSERT INTO notes SELECT v, 'note ' || v FROM generate_series(1, 50) t(v)")
            .await;

        // The same rows and the same changes in single-node DataFusion, as SELECTs.
        let single = SessionContext::new();
        single_node(
            &single,
            &format!("CREATE TABLE accounts AS {}", ACCOUNTS.join(" UNION ALL ")),
        )
        .await;

        // A filter on the distribution column changes one shard's files only.
        let before = cluster_files_in_catalog(cluster.coordinator());
        assert_eq!(
            c.update("UPDATE accounts SET balance = balance + 5 WHERE id = 42")
                .await
                .expect("update"),
            1
        );
        let after = cluster_files_in_catalog(cluster.coordinator());
        assert_eq!(
            changed_shards(&before, &after).len(),
            1,
            "{before:?} {after:?}"
        );
        single_node(
            &single,
            "CREATE OR REPLACE TABLE accounts AS SELECT id, plan, CASE WHEN id = 42 THEN \
             balance + 5 ELSE balance END AS balance, owner FROM accounts",
        )
        .await;

        // Multi-shard: every shard, several columns, expressions over the row, NULLs.
        let selected = count(
            &single,
            "SELECT count(*) FROM accounts WHERE plan IN (1, 3) AND owner IS NOT NULL",
        )
        .await;
        assert_eq!(
            c.update(
                "UPDATE accounts AS a SET balance = a.balance * 2, owner = upper(owner) \
                 WHERE a.plan IN (1, 3) AND owner IS NOT NULL"
            )
            .await
            .expect("update"),
            selected
        );
        single_node(
            &single,
            "CREATE OR REPLACE TABLE accounts AS SELECT id, plan, CASE WHEN plan IN (1, 3) AND \
             owner IS NOT NULL THEN balance * 2 ELSE balance END AS balance, CASE WHEN plan IN \
             (1, 3) AND owner IS NOT NULL THEN upper(owner) ELSE owner END AS owner \
             FROM accounts",
        )
        .await;
        let selected = count(
            &single,
            "SELECT count(*) FROM accounts WHERE balance > 20000 OR owner IS NULL",
        )
        .await;
        assert!(selected > 0);
        assert_eq!(
            c.update("DELETE FROM accounts WHERE balance > 20000 OR owner IS NULL")
                .await
                .expect("delete"),
            selected
        );
        single_node(
            &single,
            "CREATE OR REPLACE TABLE accounts AS SELECT * FROM accounts \
             WHERE NOT (balance > 20000 OR owner IS NULL)",
        )
        .await;
        // Nothing matches: nothing is rewritten.
        let before = cluster_files_in_catalog(cluster.coordinator());
        assert_eq!(
            c.update("DELETE FROM accounts WHERE id < 0")
                .await
                .expect("delete"),
            0
        );
        assert_eq!(before, cluster_files_in_catalog(cluster.coordinator()));
        for sql in [
            "SELECT * FROM accounts ORDER BY id",
            "SELECT plan, count(*), sum(balance) FROM accounts GROUP BY plan ORDER BY plan",
        ] {
            let expected = single_node(&single, sql).await;
            assert_same(sql, &c.run(sql).await, &expected, true);
        }

        // A reference table (every copy) and a local table.
        assert_eq!(
            c.update("UPDATE plans SET name = name || ' (old)' WHERE plan < 3")
                .await
                .expect("update"),
            3
        );
        assert_eq!(
            rows(
                &c.run(
                    "SELECT a.id, p.name FROM accounts a JOIN plans p ON a.plan = p.plan \
                          WHERE a.id IN (2, 5) ORDER BY a.id"
                )
                .await
            )
            .join(";"),
            "2 | plan 2 (old);5 | plan 5"
        );
        // Every copy of a reference table is rewritten alike: no volatile functions.
        for sql in [
            "UPDATE plans SET name = name || random() WHERE plan = 1",
            "DELETE FROM plans WHERE random() < 0.5",
        ] {
            let message = c.expect_error(sql, Code::InvalidArgument).await;
            assert!(message.contains("VOLATILE"), "{message}");
        }
        assert_eq!(c.scalar("SELECT count(*) FROM plans").await, "7");
        assert_eq!(
            c.update("DELETE FROM notes WHERE id > 10")
                .await
                .expect("delete"),
            40
        );
        assert_eq!(
            c.update("UPDATE notes SET body = NULL WHERE id = 3")
                .await
                .expect("update"),
            1
        );
        assert_eq!(
            c.scalar("SELECT count(*) || '/' || count(body) FROM notes")
                .await,
            "10/9"
        );

        // Refused, and nothing changes.
        let before = cluster_files_in_catalog(cluster.coordinator());
        let message = c
            .expect_error("UPDATE accounts SET id = id + 1", Code::InvalidArgument)
            .await;
        assert!(message.contains("partition value"), "{message}");
        let status = c
            .query("UPDATE accounts SET balance = NULL WHERE id = 7")
            .await
            .expect_err("NOT NULL");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("\"balance\""),
            "{}",
            status.message()
        );
        assert_eq!(
            status
                .metadata()
                .get(shardfusion_common::status::SQLSTATE_METADATA)
                .and_then(|v| v.to_str().ok()),
            Some("23502")
        );
        c.expect_error("UPDATE accounts SET nope = 1", Code::InvalidArgument)
            .await;
        c.expect_error(
            "UPDATE accounts SET (owner, plan) = ('a', 1)",
            Code::Unimplemented,
        )
        .await;
        c.expect_error("DELETE FROM missing WHERE id = 1", Code::NotFound)
            .await;
        assert_eq!(before, cluster_files_in_catalog(cluster.coordinator()));
        let expected = single_node(&single, "SELECT * FROM accounts ORDER BY id").await;
        assert_same(
            "after refusals",
            &c.run("SELECT * FROM accounts ORDER BY id").await,
            &expected,
            true,
        );
    })
    .await
    .expect("the test finishes within 240 s");
}

/// Eight clients add to one counter at once, retrying the serialization failures as a client
/// should: no increment is lost or applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_one_row_lose_no_write() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE counters (id BIGINT NOT NULL, n BIGINT NOT NULL)")
            .await;
        c.run("SELECT create_distributed_table('counters', 'id', shard_count => 4)")
            .await;
        c.run("INSERT INTO counters SELECT v, 0 FROM generate_series(1, 20) t(v)")
            .await;
        const CLIENTS: usize = 8;
        const ADDS: usize = 5;
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let url = cluster.url.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = shardfusion_tests::TestClient::connect(&url).await;
                let mut conflicts = 0;
                for _ in 0..ADDS {
                    loop {
                        match client
                            .update("UPDATE counters SET n = n + 1 WHERE id = 7")
                            .await
                        {
                            Ok(1) => break,
                            Ok(other) => panic!("updated {other} rows"),
                            Err(s) if is_retryable_conflict(&s) => conflicts += 1,
                            Err(s) => panic!("update failed: {s:?}"),
                        }
                    }
                }
                conflicts
            }));
        }
        for task in tasks {
            task.await.expect("client");
        }
        assert_eq!(
            c.scalar("SELECT n FROM counters WHERE id = 7").await,
            (CLIENTS * ADDS).to_string()
        );
        assert_eq!(c.scalar("SELECT sum(n) FROM counters").await, "40");
    })
    .await
    .expect("the test finishes within 240 s");
}

/// What a client writes every day: filling NULLs with `coalesce`, stamping rows with
/// `now()`, and a filter with a volatile function, which is evaluated once per row: a row is
/// either changed in every column set or in none, and the count says how many were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn functions_run_as_in_a_query_and_filters_once_per_row() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE events (id BIGINT NOT NULL, label TEXT, seen TIMESTAMP, \
             a BIGINT NOT NULL, b BIGINT NOT NULL)",
        )
        .await;
        c.run("SELECT create_distributed_table('events', 'id', shard_count => 4)")
            .await;
        c.run(
            "INSERT INTO events SELECT v, CASE WHEN v % 2 = 0 THEN 'x' END, NULL, 0 AS a, 0 AS b \
             FROM generate_series(1, 1000) t(v)",
        )
        .await;
        assert_eq!(
            c.update("UPDATE events SET label = coalesce(label, 'none') WHERE coalesce(label, '') = ''")
                .await
                .expect("coalesce"),
            500
        );
        assert_eq!(
            c.update("UPDATE events SET seen = now() WHERE id <= 10")
                .await
                .expect("now()"),
            10
        );
        // One statement, one start time: every stamped row has the same one.
        assert_eq!(
            c.scalar("SELECT count(DISTINCT seen) || '/' || count(seen) FROM events").await,
            "1/10"
        );
        assert_eq!(
            c.update("DELETE FROM events WHERE seen < current_timestamp - INTERVAL '1 day'")
                .await
                .expect("current_timestamp"),
            0
        );
        let changed = c
            .update("UPDATE events SET a = 1, b = 1 WHERE random() < 0.5")
            .await
            .expect("random()");
        assert_eq!(
            c.scalar("SELECT count(*) FILTER (WHERE a <> b) || '/' || count(*) FILTER (WHERE a = 1) FROM events")
                .await,
            format!("0/{changed}")
        );
        assert_eq!(
            c.scalar("SELECT count(*) || '/' || count(*) FILTER (WHERE label = 'none') FROM events")
                .await,
            "1000/500"
        );
    })
    .await
    .expect("the test finishes within 240 s");
}
