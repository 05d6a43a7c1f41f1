//! Open prepared statements are bounded: per client, in bytes, and in idle time.
//!
//! Regression test for issue 10 ("Also: Memory"): 200 unclosed 1 MB prepared statements
//! grew the coordinator by 200 MB, since nothing ever dropped a statement its client did not
//! close. Now creating one past a cap fails with `ResourceExhausted` (asking to close
//! prepared statements), closing one frees its slot and memory, and unused ones expire.

use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::client::{FlightSqlServiceClient, PreparedStatement};
use shardfusion_scheduler::frontend::flight_sql::FlightSqlServer;
use shardfusion_scheduler::session::prepared_statements::PreparedStatementLimits;
use shardfusion_tests::TestCluster;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Client = FlightSqlServiceClient<Channel>;

/// A new client on its own connection (so its own peer address).
async fn connect(url: &str) -> Client {
    let channel = Channel::from_shared(url.replacen("grpc://", "http://", 1))
        .expect("valid URL")
        .connect()
        .await
        .expect("connect");
    FlightSqlServiceClient::new(channel)
}

fn status(error: arrow_flight::error::FlightError) -> Status {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => *status,
        other => Status::unknown(other.to_string()),
    }
}

async fn prepare(client: &mut Client, sql: &str) -> Result<PreparedStatement<Channel>, Status> {
    client.prepare(sql.to_string(), None).await.map_err(status)
}

async fn with_table(url: &str) {
    let mut c = shardfusion_tests::TestClient::connect(url).await;
    c.run("CREATE TABLE t (k BIGINT NOT NULL, v TEXT)").await;
    c.run("SELECT create_distributed_table('t', 'k', shard_count => 4)")
        .await;
    c.run("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await;
}

/// A Flight SQL server with `limits` over the cluster's coordinator, on its own port;
/// returns its URL, the service (to read its usage) and the sender that stops it.
async fn serve_with(
    cluster: &TestCluster,
    limits: PreparedStatementLimits,
) -> (String, FlightSqlServer, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("grpc://{}", listener.local_addr().expect("address"));
    let service = FlightSqlServer::with_limits(cluster.coordinator().clone(), limits);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(service.clone()))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async move {
                let _ = stopped.await;
            },
        );
    tokio::spawn(server);
    (url, service, stop)
}

/// With the default limits, as a user meets them: one client cannot hold more than the
/// per-client cap, other clients still can prepare, and closing frees a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclosed_prepared_statements_are_capped_per_client() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        with_table(&cluster.url).await;
        let cap = PreparedStatementLimits::default().per_client;
        let mut leaky = connect(&cluster.url).await;
        let mut held = Vec::new();
        let refused = loop {
            match prepare(
                &mut leaky,
                &format!("SELECT v FROM t WHERE k = {}", held.len()),
            )
            .await
            {
                Ok(statement) => held.push(statement),
                Err(status) => break status,
            }
            assert!(
                held.len() <= cap,
                "{} unclosed prepared statements were accepted from one client (cap {cap})",
                held.len()
            );
        };
        assert_eq!(held.len(), cap);
        assert_eq!(
            refused.code(),
            Code::ResourceExhausted,
            "{}",
            refused.message()
        );
        assert!(
            refused.message().contains("close prepared statements"),
            "{}",
            refused.message()
        );

        // Another client is not affected by the first one's statements.
        let mut other = connect(&cluster.url).await;
        let mut statement = prepare(&mut other, "SELECT count(*) FROM t")
            .await
            .expect("prepare");
        let info = statement.execute().await.expect("execute");
        assert!(!info.endpoint.is_empty());
        statement.close().await.expect("close");

        // Closing one of the first client's statements frees a slot for it.
        held.pop().expect("held").close().await.expect("close");
        let again = prepare(&mut leaky, "SELECT 1").await.expect("a freed slot");
        // The held statements still work.
        held[0].execute().await.expect("a held statement executes");
        again.close().await.expect("close");
        for statement in held {
            statement.close().await.expect("close");
        }
        cluster.shutdown().await;
    })
    .await
    .expect("finished in time");
}

/// Closing a statement frees its memory, and an unused one expires after the configured
/// idle time, freeing its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_and_idle_prepared_statements_are_freed() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(1).await;
        with_table(&cluster.url).await;
        let limits = PreparedStatementLimits {
            idle_timeout: Duration::from_secs(2),
            per_client: 3,
            per_client_bytes: 8 << 20,
            total_bytes: 64 << 20,
        };
        let (url, service, stop) = serve_with(&cluster, limits).await;
        let mut client = connect(&url).await;

        // A 1 MB statement, as in the report, holds its memory until closed...
        let big = |i: usize| {
            format!(
                "SELECT k FROM t WHERE v <> '{}' OR k = {i}",
                "x".repeat(1 << 20)
            )
        };
        let first = prepare(&mut client, &big(0)).await.expect("prepare");
        assert!(service.prepared_statements().usage().1 > 1 << 20);
        // ... and closing it gives its memory back.
        first.close().await.expect("close");
        assert_eq!(service.prepared_statements().usage(), (0, 0));

        // The count cap of this server is 3.
        let mut held = Vec::new();
        for i in 0..3 {
            held.push(
                prepare(&mut client, &format!("SELECT v FROM t WHERE k = {i}"))
                    .await
                    .expect("prepare"),
            );
        }
        let refused = prepare(&mut client, "SELECT 1")
            .await
            .expect_err("past the cap");
        assert_eq!(refused.code(), Code::ResourceExhausted);

        // Kept in use, a statement lives past the idle time; left alone, it expires.
        let mut used = held.remove(0);
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(900)).await;
            used.execute()
                .await
                .expect("a statement in use does not expire");
        }
        // The other two were idle for 2.7 s: gone, with a message saying why.
        let mut idle = held.remove(0);
        let expired = idle.execute().await.map_err(status).expect_err("expired");
        assert_eq!(expired.code(), Code::NotFound, "{}", expired.message());
        assert!(
            expired.message().contains("unused"),
            "{}",
            expired.message()
        );
        assert_eq!(service.prepared_statements().usage().0, 1);
        // Their slots are free again.
        let second = prepare(&mut client, "SELECT 2")
            .await
            .expect("a freed slot");
        let third = prepare(&mut client, "SELECT 3")
            .await
            .expect("a freed slot");
        for statement in [used, second, third] {
            statement.close().await.expect("close");
        }
        assert_eq!(service.prepared_statements().usage(), (0, 0));
        let _ = stop.send(());
        cluster.shutdown().await;
    })
    .await
    .expect("finished in time");
}
