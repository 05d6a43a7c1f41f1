//! Users, logins and privileges, as a client sees them (issue 13, "Security"):
//! - a wrong password, or a missing, forged or expired token, gets `Unauthenticated`;
//! - a read-only user's write gets `PermissionDenied` and changes nothing;
//! - a new user has no privileges until granted; grants and revokes apply to the next
//!   statement; server files are the superuser's;
//! - each user sees only their own statements in `shardfusion_stat_statements`, and only
//!   fetches their own results.

use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::HandshakeRequest;
use arrow_flight::flight_service_client::FlightServiceClient;
use base64::Engine;
use shardfusion_tests::compare::rows;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

const ADMIN_PASSWORD: &str = "correct horse battery staple";

async fn secured_cluster(token_ttl: Duration) -> TestCluster {
    TestCluster::start_with(2, |options| {
        options.password = Some(ADMIN_PASSWORD.into());
        options.token_ttl = token_ttl;
    })
    .await
}

async fn login(cluster: &TestCluster, user: &str, password: &str) -> TestClient {
    TestClient::connect_as(&cluster.url, user, password)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The status of a handshake with `user:password` (HTTP basic credentials).
async fn handshake_status(url: &str, user: &str, password: &str) -> tonic::Status {
    let channel = tonic::transport::Channel::from_shared(url.replacen("grpc://", "http://", 1))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = FlightServiceClient::new(channel);
    let mut request = tonic::Request::new(futures::stream::iter([HandshakeRequest::default()]));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    request
        .metadata_mut()
        .insert("authorization", basic.parse().expect("ascii"));
    match client.handshake(request).await {
        Ok(_) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

fn ids(values: &[i64]) -> RecordBatch {
    let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
    RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![std::sync::Arc::new(Int64Array::from(values.to_vec()))],
    )
    .expect("batch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_tokens_and_privileges() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = secured_cluster(Duration::from_secs(3600)).await;

        // No credentials, wrong passwords, unknown users, forged tokens: Unauthenticated.
        let mut anonymous = TestClient::connect(&cluster.url).await;
        let message = anonymous
            .expect_error("SELECT 1", Code::Unauthenticated)
            .await;
        assert!(message.contains("log in"), "{message}");
        let status = handshake_status(&cluster.url, "admin", "wrong").await;
        assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
        assert!(
            status.message().contains("password authentication failed"),
            "{}",
            status.message()
        );
        let status = handshake_status(&cluster.url, "nobody", ADMIN_PASSWORD).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
        assert!(
            TestClient::connect_as(&cluster.url, "admin", "wrong")
                .await
                .is_err()
        );
        // Every method is gated, implemented or not, actions included.
        let channel =
            tonic::transport::Channel::from_shared(cluster.url.replacen("grpc://", "http://", 1))
                .expect("url")
                .connect()
                .await
                .expect("connect");
        let mut raw = FlightServiceClient::new(channel);
        for action in ["BeginTransaction", "CreatePreparedStatement", "anything"] {
            let status = raw
                .do_action(arrow_flight::Action::new(action, ""))
                .await
                .expect_err("refused");
            assert_eq!(status.code(), Code::Unauthenticated, "{action}: {status}");
        }
        let status = raw
            .list_actions(arrow_flight::Empty {})
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{status}");
        let mut forged = TestClient::connect(&cluster.url).await;
        forged
            .flight_sql()
            .set_header("authorization", format!("Bearer {}", "ab".repeat(32)));
        forged.expect_error("SELECT 1", Code::Unauthenticated).await;

        // The admin sets up a table and users.
        let mut admin = login(&cluster, "admin", ADMIN_PASSWORD).await;
        admin
            .run("CREATE TABLE accounts (id BIGINT NOT NULL, balance BIGINT)")
            .await;
        admin
            .run("SELECT create_distributed_table('accounts', 'id', shard_count => 4)")
            .await;
        admin
            .run("INSERT INTO accounts VALUES (1, 100), (2, 200), (3, 300)")
            .await;
        admin.run("CREATE TABLE secrets (id BIGINT)").await;
        admin.run("INSERT INTO secrets VALUES (42)").await;
        admin
            .run("CREATE USER reader WITH PASSWORD 'reader-pw'")
            .await;
        admin
            .run("CREATE USER writer WITH PASSWORD 'writer-pw'")
            .await;
        admin.run("CREATE ROLE analysts").await;
        admin.run("CREATE USER newbie PASSWORD 'newbie-pw'").await;
        admin.run("GRANT SELECT ON accounts TO analysts").await;
        admin.run("GRANT analysts TO reader").await;
        admin
            .run("GRANT SELECT, INSERT ON TABLE accounts TO writer")
            .await;
        admin
            .expect_error("CREATE USER reader", Code::AlreadyExists)
            .await;
        admin
            .expect_error("GRANT SELECT ON nope TO reader", Code::NotFound)
            .await;
        admin
            .expect_error("GRANT SELECT ON accounts TO nobody", Code::NotFound)
            .await;

        // A new user has no privileges until granted.
        let mut newbie = login(&cluster, "newbie", "newbie-pw").await;
        let message = newbie
            .expect_error("SELECT count(*) FROM accounts", Code::PermissionDenied)
            .await;
        assert!(
            message.contains("permission denied for table accounts"),
            "{message}"
        );

        // The reader reads (through its role), and cannot write, define or administer.
        let mut reader = login(&cluster, "reader", "reader-pw").await;
        assert_eq!(
            reader.scalar("SELECT sum(balance) FROM accounts").await,
            "600"
        );
        // Every way of reaching a table is checked: joins, subqueries, CTEs, EXPLAIN.
        for sql in [
            "SELECT * FROM secrets",
            "SELECT a.id FROM accounts a JOIN secrets s ON a.id = s.id",
            "SELECT id FROM accounts WHERE id IN (SELECT id FROM secrets)",
            "WITH s AS (SELECT * FROM secrets) SELECT count(*) FROM s",
            "EXPLAIN SELECT * FROM secrets",
            "INSERT INTO accounts VALUES (4, 400)",
            "INSERT INTO accounts SELECT id, id * 2 FROM secrets",
            "COPY accounts FROM '/etc/passwd'",
            "COPY (SELECT * FROM accounts) TO '/tmp/stolen.csv'",
            "TRUNCATE accounts",
            "DROP TABLE accounts",
            "CREATE TABLE mine (id BIGINT)",
            "ALTER TABLE accounts ADD COLUMN note TEXT",
            "SELECT citus_add_node('127.0.0.1', 1)",
            "SELECT create_reference_table('accounts')",
            "CREATE USER sneaky WITH SUPERUSER PASSWORD 'x'",
            "ALTER USER reader WITH SUPERUSER",
            "GRANT INSERT ON accounts TO reader",
            "DROP USER writer",
        ] {
            reader.expect_error(sql, Code::PermissionDenied).await;
        }
        assert!(
            reader
                .update("INSERT INTO accounts VALUES (5, 500)")
                .await
                .is_err()
        );
        let ingest = reader
            .ingest("accounts", futures::stream::iter([Ok(ids(&[7, 8]))]))
            .await
            .expect_err("ingest refused");
        assert_eq!(
            ingest.code(),
            Code::PermissionDenied,
            "{}",
            ingest.message()
        );
        // Nothing changed.
        assert_eq!(admin.scalar("SELECT count(*) FROM accounts").await, "3");
        assert_eq!(admin.scalar("SELECT count(*) FROM secrets").await, "1");
        // Reading metadata is for everyone, as in Citus.
        assert_eq!(
            reader
                .scalar("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'accounts'")
                .await,
            "4"
        );
        assert!(
            reader
                .scalar("SELECT citus_version()")
                .await
                .contains("ShardFusion")
        );

        // The writer inserts (statements and bulk ingest) but cannot drop.
        let mut writer = login(&cluster, "writer", "writer-pw").await;
        writer.run("INSERT INTO accounts VALUES (4, 400)").await;
        let loaded = writer
            .ingest("accounts", futures::stream::iter([Ok(ids(&[5, 6]))]))
            .await
            .expect("writer ingests");
        assert_eq!(loaded, 2);
        writer
            .expect_error("DROP TABLE accounts", Code::PermissionDenied)
            .await;
        writer
            .expect_error("TRUNCATE accounts", Code::PermissionDenied)
            .await;
        assert_eq!(admin.scalar("SELECT count(*) FROM accounts").await, "6");

        // Each user sees only their own statements; the admin sees everyone's.
        let seen = |batches: &[RecordBatch]| rows(batches);
        let reader_sees = seen(
            &reader
                .run("SELECT usename, query FROM shardfusion_stat_statements")
                .await,
        );
        assert!(!reader_sees.is_empty());
        assert!(
            reader_sees.iter().all(|r| r.starts_with("reader")),
            "{reader_sees:?}"
        );
        let admin_sees = seen(
            &admin
                .run("SELECT DISTINCT usename FROM shardfusion_stat_statements ORDER BY 1")
                .await,
        );
        assert_eq!(admin_sees, ["admin", "newbie", "reader", "writer"]);

        // A result belongs to the user that ran the statement.
        let info = admin
            .flight_sql()
            .execute("SELECT * FROM secrets".to_string(), None)
            .await
            .expect("admin query");
        let ticket = info.endpoint[0].ticket.clone().expect("ticket");
        let stolen = reader.flight_sql().do_get(ticket.clone()).await;
        let status = match stolen {
            Ok(_) => panic!("another user's result was served"),
            Err(arrow_flight::error::FlightError::Tonic(status)) => *status,
            Err(other) => panic!("{other}"),
        };
        assert_eq!(status.code(), Code::NotFound, "{}", status.message());
        // ... and is still there for its owner.
        let mine = admin
            .flight_sql()
            .do_get(ticket)
            .await
            .expect("owner fetches");
        let mine: Vec<RecordBatch> = futures::TryStreamExt::try_collect(mine)
            .await
            .expect("rows");
        assert_eq!(rows(&mine), ["42"]);

        // Revoking applies to the next statement; dropping a user ends its sessions.
        admin.run("REVOKE analysts FROM reader").await;
        reader
            .expect_error("SELECT count(*) FROM accounts", Code::PermissionDenied)
            .await;
        admin.run("REVOKE INSERT ON accounts FROM writer").await;
        writer
            .expect_error("INSERT INTO accounts VALUES (9, 9)", Code::PermissionDenied)
            .await;
        admin.run("DROP USER reader").await;
        reader.expect_error("SELECT 1", Code::Unauthenticated).await;
        // A user changes their own password; the old one stops working, the session goes on.
        writer
            .run("ALTER USER writer WITH PASSWORD 'new-writer-pw'")
            .await;
        assert_eq!(writer.scalar("SELECT count(*) FROM accounts").await, "6");
        assert!(
            TestClient::connect_as(&cluster.url, "writer", "writer-pw")
                .await
                .is_err()
        );
        let mut writer = login(&cluster, "writer", "new-writer-pw").await;
        assert_eq!(writer.scalar("SELECT count(*) FROM accounts").await, "6");
        // Nobody can leave the cluster without a superuser that can log in.
        admin
            .expect_error(
                "ALTER USER admin WITH PASSWORD NULL",
                Code::FailedPrecondition,
            )
            .await;
        admin
            .expect_error("DROP USER admin", Code::InvalidArgument)
            .await;
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = secured_cluster(Duration::from_secs(2)).await;
        let mut admin = login(&cluster, "admin", ADMIN_PASSWORD).await;
        assert_eq!(admin.scalar("SELECT 1").await, "1");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let message = admin.expect_error("SELECT 1", Code::Unauthenticated).await;
        assert!(message.contains("expired"), "{message}");
        let mut admin = login(&cluster, "admin", ADMIN_PASSWORD).await;
        assert_eq!(admin.scalar("SELECT 1").await, "1");
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_loopback_without_a_password_unless_insecure() {
    tokio::time::timeout(Duration::from_secs(120), async {
        use shardfusion_scheduler::server::{ServeOptions, check_listen_address};
        let everywhere = "0.0.0.0:50050".parse().expect("address");
        let loopback = "127.0.0.1:50050".parse().expect("address");
        let insecure = ServeOptions {
            insecure: true,
            ..ServeOptions::default()
        };
        let trusted = TestCluster::start(1).await;
        let coordinator = trusted.coordinator();
        let refused = check_listen_address(everywhere, coordinator, &ServeOptions::default())
            .expect_err("refused");
        assert!(refused.to_string().contains("--password"), "{refused}");
        check_listen_address(loopback, coordinator, &ServeOptions::default()).expect("loopback");
        check_listen_address(everywhere, coordinator, &insecure).expect("insecure");
        trusted.shutdown().await;
        let secured = secured_cluster(Duration::from_secs(60)).await;
        check_listen_address(everywhere, secured.coordinator(), &ServeOptions::default())
            .expect("users with passwords");
        secured.shutdown().await;
    })
    .await
    .expect("test timed out");
}
