//! Statements share one DataFusion session per catalog snapshot. What a user sees of that:
//! nothing, except speed. Every catalog change is seen by the very next statement (a new
//! column, a dropped and re-created table with other types, a table distributed after it was
//! queried, rows just inserted), a `SET` stays in its own statement, and statements planned
//! at once by many clients each count only their own work in `shardfusion_stat_statements`.

use std::time::Duration;

use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::rows;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_next_statement_sees_every_catalog_change() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        client
            .run("CREATE TABLE items (id BIGINT NOT NULL, name TEXT)")
            .await;
        client
            .run("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
            .await;
        assert_eq!(client.scalar("SELECT count(*) FROM items").await, "2");

        // A new column.
        client.run("ALTER TABLE items ADD COLUMN price DOUBLE").await;
        assert_eq!(
            rows(&client.run("SELECT id, price FROM items ORDER BY id").await),
            ["1 | NULL", "2 | NULL"]
        );

        // Distributed after it was queried as a local table: the rows move to the workers,
        // and point queries are routed to their shards.
        client
            .run("SELECT create_distributed_table('items', 'id', shard_count => 4)")
            .await;
        assert_eq!(
            client
                .scalar("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'items'")
                .await,
            "4"
        );
        assert_eq!(
            client.scalar("SELECT name FROM items WHERE id = 2").await,
            "two"
        );
        let plan = rows(&client.run("EXPLAIN SELECT name FROM items WHERE id = 2").await).join("\n");
        assert!(plan.contains("DistributedExec"), "routed to a worker:\n{plan}");

        // Rows just inserted.
        client
            .run("INSERT INTO items SELECT v, 'item ' || v, v * 1.5 FROM generate_series(3, 1000) t(v)")
            .await;
        assert_eq!(client.scalar("SELECT count(*) FROM items").await, "1000");
        assert_eq!(
            client.scalar("SELECT price FROM items WHERE id = 10").await,
            "15.0"
        );

        // Dropped and created again with other types.
        client.run("DROP TABLE items").await;
        let gone = client.query("SELECT count(*) FROM items").await;
        assert!(gone.is_err(), "a dropped table is not found");
        client
            .run("CREATE TABLE items (id TEXT NOT NULL, qty INT)")
            .await;
        client.run("INSERT INTO items VALUES ('a', 7)").await;
        assert_eq!(
            rows(&client.run("SELECT id, qty + 1 FROM items").await),
            ["a | 8"]
        );
    })
    .await
    .expect("the test finishes within 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_stays_in_its_own_statement() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let cluster = TestCluster::start(1).await;
        let mut client = cluster.client().await;
        let before = client
            .scalar("SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'")
            .await;
        client.run("SET datafusion.execution.batch_size = 7").await;
        let after = client
            .scalar("SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'")
            .await;
        assert_eq!(after, before, "a SET changed the session other statements share");
        assert_ne!(before, "7");
    })
    .await
    .expect("the test finishes within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_statements_count_only_their_own_rows() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        for (table, rows) in [("small", 10), ("large", 5000)] {
            client
                .run(&format!("CREATE TABLE {table} (id BIGINT NOT NULL, g INT)"))
                .await;
            client
                .run(&format!(
                    "SELECT create_distributed_table('{table}', 'id', shard_count => 4)"
                ))
                .await;
            client
                .run(&format!(
                    "INSERT INTO {table} SELECT v, v % 3 FROM generate_series(1, {rows}) t(v)"
                ))
                .await;
        }
        // Both tables' scans run at once from several clients, many times; each statement's
        // transfers are counted on its own line.
        let mut tasks = Vec::new();
        for i in 0..6 {
            let mut c = cluster.client().await;
            let table = if i % 2 == 0 { "small" } else { "large" };
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    c.run(&format!("SELECT id FROM {table}")).await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("client task");
        }
        let received = |table: &str| {
            format!(
                "SELECT calls, rows_received FROM shardfusion_stat_statements \
                 WHERE query = 'SELECT id FROM {table}'"
            )
        };
        assert_eq!(
            rows(&client.run(&received("small")).await),
            ["30 | 300"],
            "the small table's statements received their own rows only"
        );
        assert_eq!(
            rows(&client.run(&received("large")).await),
            ["30 | 150000"],
            "the large table's statements received their own rows only"
        );
    })
    .await
    .expect("the test finishes within 120 s");
}
