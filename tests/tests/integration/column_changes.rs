//! `ALTER TABLE ... ADD COLUMN ... DEFAULT`, `DROP COLUMN` and `RENAME COLUMN` on tables with
//! rows, as PostgreSQL runs them: stored rows take the default, lose the column for good (a
//! column added again under its name starts empty), or keep their values under the new name;
//! keys, indexes and checks follow their column, the distribution column stays; all of it
//! rolls back with its transaction and leaves no stray file.

use std::time::Duration;

use shardfusion_tests::compare::rows;
use shardfusion_tests::conflict::sqlstate;
use shardfusion_tests::shard_files::assert_no_stray_files;
use shardfusion_tests::{TestClient, TestCluster};

async fn columns(c: &mut TestClient, table: &str) -> Vec<String> {
    let (schema, _) = c
        .query_with_schema(&format!("SELECT * FROM {table} LIMIT 0"))
        .await
        .expect("the table's columns");
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn column_changes_rewrite_the_rows_they_hold() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE items (id BIGINT NOT NULL, a BIGINT, b TEXT)")
            .await;
        c.run("SELECT create_distributed_table('items', 'id', shard_count => 4)")
            .await;
        for first in [1, 501] {
            c.run(&format!(
                "INSERT INTO items SELECT v, v * 10, 'b' || v FROM generate_series({first}, {}) t(v)",
                first + 499
            ))
            .await;
        }

        // ADD COLUMN ... DEFAULT: stored rows take it, new rows too.
        c.run("ALTER TABLE items ADD COLUMN c BIGINT DEFAULT 5").await;
        c.run("ALTER TABLE items ADD COLUMN seen TIMESTAMP DEFAULT now()")
            .await;
        c.run("ALTER TABLE items ADD COLUMN n INT NOT NULL DEFAULT 0")
            .await;
        assert_eq!(
            rows(
                &c.run(
                    "SELECT count(*), min(c), max(c), count(DISTINCT seen), count(seen), sum(n) \
                     FROM items"
                )
                .await
            ),
            vec!["1000 | 5 | 5 | 1 | 1000 | 0"]
        );
        c.run("INSERT INTO items (id, a) VALUES (2000, 1)").await;
        assert_eq!(
            c.scalar("SELECT c FROM items WHERE id = 2000").await,
            "5"
        );
        let status = c
            .query("ALTER TABLE items ADD COLUMN m INT NOT NULL DEFAULT NULL")
            .await
            .expect_err("NULL into a NOT NULL column");
        assert_eq!(sqlstate(&status), Some("23502"), "{status:?}");
        assert!(!columns(&mut c, "items").await.contains(&"m".to_string()));

        // DROP COLUMN: gone for good.
        c.run("ALTER TABLE items DROP COLUMN b").await;
        assert_eq!(
            columns(&mut c, "items").await,
            vec!["id", "a", "c", "seen", "n"]
        );
        c.run("ALTER TABLE items ADD COLUMN b TEXT").await;
        assert_eq!(c.scalar("SELECT count(b) FROM items").await, "0");
        c.run("ALTER TABLE items DROP COLUMN IF EXISTS nope").await;

        // RENAME COLUMN: values kept under the new name.
        c.run("ALTER TABLE items RENAME COLUMN a TO alpha").await;
        assert_eq!(
            c.scalar("SELECT sum(alpha) FROM items WHERE id <= 1000").await,
            "5005000"
        );
        c.expect_error("SELECT a FROM items", tonic::Code::NotFound)
            .await;

        // The distribution column stays; keys, indexes and checks follow their column.
        let status = c
            .query("ALTER TABLE items DROP COLUMN id")
            .await
            .expect_err("the distribution column");
        assert_eq!(sqlstate(&status), Some("2BP01"), "{status:?}");
        assert!(status.message().contains("distribution column"), "{status:?}");
        c.run("CREATE INDEX items_c ON items (c)").await;
        c.run("ALTER TABLE items ADD CONSTRAINT positive CHECK (alpha > 0)")
            .await;
        c.run("ALTER TABLE items RENAME COLUMN alpha TO a2").await;
        let status = c
            .query("INSERT INTO items (id, a2) VALUES (5000, -1)")
            .await
            .expect_err("the renamed check");
        assert_eq!(sqlstate(&status), Some("23514"), "{status:?}");
        c.run("ALTER TABLE items DROP COLUMN c").await;
        assert_eq!(
            c.scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'items'")
                .await,
            "0"
        );
        c.run("ALTER TABLE items RENAME COLUMN a2 TO alpha").await;
        c.run("ALTER TABLE items ADD COLUMN c BIGINT DEFAULT 5").await;

        // Rolled back with the transaction.
        let mut session = cluster.client().await;
        session.open_session().await.expect("session");
        session.run("BEGIN").await;
        session.run("ALTER TABLE items DROP COLUMN n").await;
        session
            .run("ALTER TABLE items ADD COLUMN tag TEXT DEFAULT 'new'")
            .await;
        assert_eq!(session.scalar("SELECT count(tag) FROM items").await, "1001");
        session.run("ROLLBACK").await;
        assert_eq!(
            columns(&mut c, "items").await,
            vec!["id", "alpha", "seen", "n", "b", "c"]
        );
        assert_eq!(c.scalar("SELECT count(*) FROM items").await, "1001");

        // A reference table's copies must stay alike: no volatile default fills them.
        c.run("CREATE TABLE kinds (kind BIGINT NOT NULL)").await;
        c.run("SELECT create_reference_table('kinds')").await;
        c.run("INSERT INTO kinds VALUES (1), (2)").await;
        c.expect_error(
            "ALTER TABLE kinds ADD COLUMN r DOUBLE DEFAULT random()",
            tonic::Code::InvalidArgument,
        )
        .await;
        c.run("ALTER TABLE kinds ADD COLUMN label TEXT DEFAULT 'k'")
            .await;
        assert_eq!(c.scalar("SELECT count(label) FROM kinds").await, "2");

        assert_no_stray_files(&cluster).await;
    })
    .await
    .expect("finishes in time");
}

/// INSERTs that run while `ADD COLUMN ... DEFAULT` rewrites the table either commit rows that
/// take the default, or fail with the retryable 40001: no row ends up without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inserts_during_add_column_default_never_lack_the_default() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE hits (id BIGINT NOT NULL, v BIGINT)")
            .await;
        c.run("SELECT create_distributed_table('hits', 'id', shard_count => 4)")
            .await;
        c.run("INSERT INTO hits SELECT v, 1 FROM generate_series(1, 20000) t(v)")
            .await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let url = cluster.url.clone();
                let stop = std::sync::Arc::clone(&stop);
                tokio::spawn(async move {
                    let mut client = TestClient::connect(&url).await;
                    let mut acknowledged = 0u64;
                    let mut next = 100_000 + w * 100_000;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let sql = format!(
                            "INSERT INTO hits (id, v) SELECT v, 2 FROM generate_series({next}, {}) t(v)",
                            next + 9
                        );
                        match client.update(&sql).await {
                            Ok(n) => acknowledged += n as u64,
                            Err(status) => assert_eq!(
                                sqlstate(&status),
                                Some("40001"),
                                "only the retryable conflict: {status:?}"
                            ),
                        }
                        next += 10;
                    }
                    acknowledged
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut altered = false;
        for _ in 0..20 {
            match c
                .query("ALTER TABLE hits ADD COLUMN tag TEXT NOT NULL DEFAULT 'x'")
                .await
            {
                Ok(_) => {
                    altered = true;
                    break;
                }
                Err(status) => assert_eq!(sqlstate(&status), Some("40001"), "{status:?}"),
            }
        }
        assert!(altered, "the ALTER went through within 20 tries");
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut acknowledged = 20_000;
        for writer in writers {
            acknowledged += writer.await.expect("writer");
        }
        assert_eq!(
            rows(
                &c.run("SELECT count(*), count(tag), count(*) FILTER (WHERE tag = 'x') FROM hits")
                    .await
            ),
            vec![format!("{acknowledged} | {acknowledged} | {acknowledged}")]
        );
    })
    .await
    .expect("finishes in time");
}
