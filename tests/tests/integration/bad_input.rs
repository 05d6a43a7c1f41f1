//! Bad input gets a clear message and the right gRPC code, writes nothing, and the server
//! keeps serving.

use arrow_flight::Ticket;
use arrow_flight::flight_service_client::FlightServiceClient;
use shardfusion_tests::TestCluster;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_statements_get_clear_errors() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    c.run("CREATE TABLE items (id BIGINT NOT NULL, name TEXT, price DOUBLE)")
        .await;
    c.run("SELECT create_distributed_table('items', 'id', shard_count => 4)")
        .await;
    c.run("INSERT INTO items VALUES (1, 'a', 1.0), (2, 'b', 2.0)")
        .await;

    let m = c
        .expect_error("SELEC * FROM items", Code::InvalidArgument)
        .await;
    assert!(m.contains("syntax error"), "{m}");
    let m = c
        .expect_error("SELECT * FROM no_such_table", Code::NotFound)
        .await;
    assert!(m.contains("no_such_table"), "{m}");
    let m = c
        .expect_error("SELECT no_such_column FROM items", Code::NotFound)
        .await;
    assert!(m.contains("no_such_column"), "{m}");
    let m = c
        .expect_error("CREATE TABLE items (id INT)", Code::AlreadyExists)
        .await;
    assert!(m.contains("items"), "{m}");
    c.run("CREATE TABLE other (id INT NOT NULL)").await;
    let m = c
        .expect_error(
            "SELECT create_distributed_table('other', 'missing')",
            Code::NotFound,
        )
        .await;
    assert!(m.contains("missing"), "{m}");
    let m = c
        .expect_error(
            "SELECT create_distributed_table('nothere', 'id')",
            Code::NotFound,
        )
        .await;
    assert!(m.contains("nothere"), "{m}");

    // Rows whose types do not match the table.
    c.expect_error(
        "INSERT INTO items VALUES ('not a number', 'x', 1.0)",
        Code::InvalidArgument,
    )
    .await;
    // A NULL distribution key: nothing of the statement is written.
    let m = c
        .expect_error(
            "INSERT INTO items VALUES (3, 'c', 3.0), (NULL, 'd', 4.0)",
            Code::InvalidArgument,
        )
        .await;
    assert!(m.contains("id"), "{m}");
    assert_eq!(c.scalar("SELECT count(*) FROM items").await, "2");
    let m = c
        .expect_error("INSERT INTO items SELECT CASE WHEN value = 500 THEN NULL ELSE value END, 'x', 1.0 FROM generate_series(10, 20000)", Code::InvalidArgument)
        .await;
    assert!(m.to_lowercase().contains("null"), "{m}");
    assert_eq!(c.scalar("SELECT count(*) FROM items").await, "2");
    c.expect_error(
        "UPDATE items SET (price, name) = (0, 'x')",
        Code::Unimplemented,
    )
    .await;

    // Through the update path too.
    let status = c.update("DROP TABLE nope").await.expect_err("must fail");
    assert_eq!(status.code(), Code::NotFound);

    // The server still serves.
    assert_eq!(c.scalar("SELECT sum(price) FROM items").await, "3.0");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_refuse_requests_without_the_secret() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client().await;
    let port = c.scalar("SELECT nodeport FROM pg_dist_node").await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("url")
        .connect()
        .await
        .expect("connect to worker");
    let mut worker = FlightServiceClient::new(channel);
    let status = worker
        .do_get(Ticket::new("anything"))
        .await
        .expect_err("must be refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    // The secret itself is no credential (it never crosses the wire any more).
    let mut request = tonic::Request::new(Ticket::new("anything"));
    request.metadata_mut().insert(
        "x-shardfusion-cluster-secret",
        "test-cluster-secret".parse().expect("ascii"),
    );
    let status = worker.do_get(request).await.expect_err("must be refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    // A well-formed request MAC made without the secret is refused.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    let forged = format!(
        "v1 ts={now_ms} nonce={} aud=coordinator mac={}",
        "ab".repeat(16),
        "cd".repeat(32)
    );
    let mut request = tonic::Request::new(Ticket::new("anything"));
    request
        .metadata_mut()
        .insert("x-shardfusion-auth", forged.parse().expect("ascii"));
    let status = worker.do_get(request).await.expect_err("must be refused");
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );
    assert_eq!(c.scalar("SELECT count(*) FROM pg_dist_node").await, "1");
    cluster.shutdown().await;
}
