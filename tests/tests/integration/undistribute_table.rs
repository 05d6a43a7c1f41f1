//! `undistribute_table`: a distributed or reference table becomes a local table on the
//! coordinator with exactly its rows (one copy of a reference table's), leaves the Citus
//! metadata, keeps working (writes, keys, distributing it again), rolls back with its
//! transaction, and leaves no file behind.

use std::time::Duration;

use shardfusion_tests::compare::rows;
use shardfusion_tests::shard_files::assert_no_stray_files;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

/// The rows of `table`, in key order.
async fn all(c: &mut TestClient, table: &str) -> Vec<String> {
    rows(&c.run(&format!("SELECT * FROM {table} ORDER BY 1, 2")).await)
}

async fn table_type(c: &mut TestClient, table: &str) -> String {
    rows(
        &c.run(&format!(
            "SELECT citus_table_type FROM citus_tables WHERE table_name = '{table}'"
        ))
        .await,
    )
    .join(";")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undistributed_tables_keep_their_rows_on_the_coordinator() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE events (tenant BIGINT NOT NULL, id BIGINT NOT NULL, body TEXT, \
             PRIMARY KEY (tenant, id))",
        )
        .await;
        c.run("SELECT create_distributed_table('events', 'tenant', shard_count => 6)")
            .await;
        for first in [1, 2001] {
            c.run(&format!(
                "INSERT INTO events SELECT v % 37, v, 'event ' || v \
                 FROM generate_series({first}, {}) t(v)",
                first + 1999
            ))
            .await;
        }
        c.run("CREATE TABLE kinds (kind BIGINT NOT NULL, name TEXT)")
            .await;
        c.run("SELECT create_reference_table('kinds')").await;
        c.run("INSERT INTO kinds SELECT v, 'kind ' || v FROM generate_series(1, 9) t(v)")
            .await;
        let events = all(&mut c, "events").await;
        let kinds = all(&mut c, "kinds").await;

        c.run("SELECT undistribute_table('events')").await;
        c.run("SELECT undistribute_table('kinds', cascade_via_foreign_keys => true)")
            .await;
        assert_eq!(table_type(&mut c, "events").await, "");
        assert_eq!(table_type(&mut c, "kinds").await, "");
        assert_eq!(
            c.scalar(
                "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid IN ('events', 'kinds')"
            )
            .await,
            "0"
        );
        assert_eq!(all(&mut c, "events").await, events);
        assert_eq!(
            all(&mut c, "kinds").await,
            kinds,
            "one copy of a reference table"
        );

        // Still a table: keys enforced, writes, and distributed again with its rows.
        c.expect_error(
            "INSERT INTO events VALUES (1, 1, 'again')",
            Code::AlreadyExists,
        )
        .await;
        c.run("INSERT INTO events VALUES (1, 0, 'new')").await;
        c.run("SELECT create_distributed_table('events', 'tenant', shard_count => 3)")
            .await;
        assert_eq!(table_type(&mut c, "events").await, "distributed");
        assert_eq!(c.scalar("SELECT count(*) FROM events").await, "4001");

        // Refused for a table that is local already.
        let message = c
            .expect_error("SELECT undistribute_table('kinds')", Code::InvalidArgument)
            .await;
        assert!(message.contains("not a distributed table"), "{message}");

        // In a transaction: rolled back, then committed.
        let mut session = cluster.client().await;
        session.open_session().await.expect("session");
        session.run("BEGIN").await;
        session.run("SELECT undistribute_table('events')").await;
        assert_eq!(table_type(&mut session, "events").await, "");
        assert_eq!(session.scalar("SELECT count(*) FROM events").await, "4001");
        session.run("ROLLBACK").await;
        assert_eq!(table_type(&mut c, "events").await, "distributed");
        assert_eq!(c.scalar("SELECT count(*) FROM events").await, "4001");
        session.run("BEGIN").await;
        session.run("SELECT undistribute_table('events')").await;
        session
            .run("INSERT INTO events VALUES (2, 0, 'in the transaction')")
            .await;
        session.run("COMMIT").await;
        assert_eq!(table_type(&mut c, "events").await, "");
        assert_eq!(c.scalar("SELECT count(*) FROM events").await, "4002");

        assert_no_stray_files(&cluster).await;
    })
    .await
    .expect("finishes in time");
}
