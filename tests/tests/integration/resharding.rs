//! `alter_distributed_table(t, shard_count => n)` on the in-process cluster: co-located
//! tables re-shard together (`cascade_to_colocated => true`) or one leaves its group
//! (`false`), while a query loop checks every answer and an insert loop (retrying the
//! retryable conflicts, as a client should) checks that every acknowledged row ends up
//! present exactly once. Answers are compared with single-node DataFusion over the same rows.

use std::time::Duration;

use datafusion::prelude::SessionContext;
use shardfusion_tests::compare::{assert_same, rows};
use shardfusion_tests::online_loops::{OnlineLoops, ROWS_PER_INSERT};
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

const JOIN: &str = "SELECT CAST(sum(amount) AS BIGINT), count(*) FROM payments \
                    JOIN accounts ON account_id = id";

/// One row per key into `events`.
fn insert_events(from: i64) -> (String, Vec<i64>) {
    let ids: Vec<i64> = (from..from + ROWS_PER_INSERT).collect();
    let values: Vec<String> = ids.iter().map(|id| format!("({id})")).collect();
    (
        format!("INSERT INTO events VALUES {}", values.join(", ")),
        ids,
    )
}

async fn shard_counts(c: &mut TestClient) -> String {
    c.scalar(
        "SELECT string_agg(logicalrelid || ':' || n || ':' || colocationid, ',' \
         ORDER BY logicalrelid) FROM (SELECT p.logicalrelid, count(*) AS n, p.colocationid \
         FROM pg_dist_partition p JOIN pg_dist_shard s USING (logicalrelid) \
         GROUP BY p.logicalrelid, p.colocationid) t",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reshards_colocated_tables_online() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE accounts (id BIGINT NOT NULL, owner TEXT)")
            .await;
        c.run("CREATE TABLE payments (account_id BIGINT NOT NULL, amount BIGINT NOT NULL)")
            .await;
        c.run("CREATE TABLE events (account_id BIGINT NOT NULL)")
            .await;
        c.run("SELECT create_distributed_table('accounts', 'id', shard_count => 4)")
            .await;
        c.run(
            "SELECT create_distributed_table('payments', 'account_id', \
             colocate_with => 'accounts')",
        )
        .await;
        c.run(
            "SELECT create_distributed_table('events', 'account_id', \
             colocate_with => 'accounts')",
        )
        .await;
        c.run("INSERT INTO accounts SELECT v, 'owner ' || v FROM generate_series(1, 5000) t(v)")
            .await;
        c.run("INSERT INTO payments SELECT v % 5000 + 1, v FROM generate_series(1, 40000) t(v)")
            .await;
        let expected = rows(&c.run(JOIN).await).join("\n");

        // Co-located with others: Citus asks which way.
        let message = c
            .expect_error(
                "SELECT alter_distributed_table('payments', shard_count => 8)",
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("cascade_to_colocated"), "{message}");
        let message = c
            .expect_error(
                "SELECT alter_distributed_table('accounts', shard_count => 4, \
                 cascade_to_colocated => true)",
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("already has 4 shards"), "{message}");

        // All three to 8 shards together, while the loops run.
        let checks = vec![(JOIN.to_string(), expected.clone())];
        let loops = OnlineLoops::start(&cluster.url, checks.clone(), insert_events, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.run(
            "SELECT alter_distributed_table('accounts', shard_count => 8, \
             cascade_to_colocated => true)",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut seen = loops.stop().await;
        seen.assert_no_failures();
        let counts = shard_counts(&mut c).await;
        let groups: Vec<(&str, &str, &str)> = counts
            .split(',')
            .map(|entry| {
                let mut parts = entry.split(':');
                (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(groups.len(), 3, "{counts}");
        assert!(
            groups
                .iter()
                .all(|(_, n, g)| *n == "8" && *g == groups[0].2),
            "all 8 shards, one colocation group: {counts}"
        );
        assert_eq!(
            c.scalar(&format!(
                "SELECT shardcount FROM pg_dist_colocation WHERE colocationid = {}",
                groups[0].2
            ))
            .await,
            "8"
        );
        assert_eq!(rows(&c.run(JOIN).await).join("\n"), expected);
        // Every row is where the new ranges route it: a point query finds it.
        assert_eq!(
            c.scalar("SELECT count(*) FROM payments WHERE account_id = 4242")
                .await,
            "8"
        );

        // Payments alone to 3 shards: it leaves the group, the others keep 8.
        let loops = OnlineLoops::start(&cluster.url, checks, insert_events, 1_000_000);
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.run(
            "SELECT alter_distributed_table('payments', shard_count => 3, \
             cascade_to_colocated => false)",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let later = loops.stop().await;
        later.assert_no_failures();
        seen.acknowledged.extend(later.acknowledged);
        assert_eq!(
            c.scalar("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'payments'")
                .await,
            "3"
        );
        assert_ne!(
            c.scalar("SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'payments'")
                .await,
            c.scalar("SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'accounts'")
                .await,
        );

        // Every acknowledged insert exactly once.
        let ids = &seen.acknowledged;
        assert_eq!(
            c.scalar("SELECT count(*) || '/' || count(DISTINCT account_id) FROM events")
                .await,
            format!("{}/{}", ids.len(), ids.len())
        );

        // The answers match single-node DataFusion over the same rows.
        let single = SessionContext::new();
        single
            .sql(
                "CREATE TABLE accounts AS SELECT CAST(v AS BIGINT) AS id, 'owner ' || v AS owner \
                 FROM generate_series(1, 5000) t(v)",
            )
            .await
            .expect("accounts")
            .collect()
            .await
            .expect("accounts");
        single
            .sql(
                "CREATE TABLE payments AS SELECT CAST(v % 5000 + 1 AS BIGINT) AS account_id, \
                 CAST(v AS BIGINT) AS amount FROM generate_series(1, 40000) t(v)",
            )
            .await
            .expect("payments")
            .collect()
            .await
            .expect("payments");
        for sql in [
            JOIN,
            "SELECT account_id, count(*), CAST(sum(amount) AS BIGINT) FROM payments \
             GROUP BY account_id ORDER BY account_id LIMIT 20",
            "SELECT owner, CAST(sum(amount) AS BIGINT) FROM payments JOIN accounts \
             ON account_id = id WHERE id < 50 GROUP BY owner ORDER BY owner",
        ] {
            let expected = single
                .sql(sql)
                .await
                .expect("plans")
                .collect()
                .await
                .expect("runs");
            assert_same(sql, &c.run(sql).await, &expected, true);
        }

        // Not a distributed table; no change asked.
        c.run("CREATE TABLE plain (x BIGINT)").await;
        c.expect_error(
            "SELECT alter_distributed_table('plain', shard_count => 2)",
            Code::InvalidArgument,
        )
        .await;
        c.expect_error(
            "SELECT alter_distributed_table('accounts')",
            Code::InvalidArgument,
        )
        .await;
    })
    .await
    .expect("the test finishes within 300 s");
}
