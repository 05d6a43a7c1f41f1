//! TLS everywhere (issue 13, "TLS"): clients reach the coordinator over TLS, and the
//! coordinator and the workers (shuffles included) talk over TLS too, with certificates the
//! test makes for itself. A plaintext client against the TLS port fails cleanly, a client that
//! does not trust the authority is refused, and the server goes on serving.

use std::time::Duration;

use arrow_flight::Ticket;
use arrow_flight::flight_service_client::FlightServiceClient;
use shardfusion_tests::certificates::TestCertificates;
use shardfusion_tests::compare::rows;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

const PASSWORD: &str = "tls test password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_nodes_talk_over_tls() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let certificates = TestCertificates::for_names(&["127.0.0.1", "localhost"]);
        let cluster = TestCluster::start_with(2, |options| {
            options.password = Some(PASSWORD.into());
            options.tls = Some(certificates.identity());
            options.cluster_tls = Some(certificates.trust());
        })
        .await;
        assert!(cluster.url.starts_with("grpc+tls://"), "{}", cluster.url);
        let trust = certificates.trust();

        let mut client = TestClient::try_connect_tls(&cluster.url, Some(&trust))
            .await
            .expect("TLS connection");
        // Logins work over TLS too (the password never travels in the clear).
        client
            .flight_sql()
            .handshake("admin", PASSWORD)
            .await
            .expect("login over TLS");
        client
            .run("CREATE TABLE orders (id BIGINT NOT NULL, customer BIGINT, amount BIGINT)")
            .await;
        client
            .run("SELECT create_distributed_table('orders', 'id', shard_count => 4)")
            .await;
        client
            .run("CREATE TABLE customers (cid BIGINT NOT NULL, region TEXT)")
            .await;
        client
            .run("SELECT create_distributed_table('customers', 'cid', shard_count => 3)")
            .await;
        client
            .run(
                "INSERT INTO orders SELECT value, value % 10, value * 2 \
                 FROM generate_series(1, 1000) AS t(value)",
            )
            .await;
        client
            .run(
                "INSERT INTO customers SELECT value, 'r' || (value % 3) \
                 FROM generate_series(0, 9) AS t(value)",
            )
            .await;
        // Co-located (router and multi-shard) and shuffled (worker to worker) queries.
        assert_eq!(client.scalar("SELECT count(*) FROM orders").await, "1000");
        assert_eq!(
            client
                .scalar("SELECT amount FROM orders WHERE id = 7")
                .await,
            "14"
        );
        let by_region = rows(
            &client
                .run(
                    "SELECT c.region, count(*), sum(o.amount) FROM orders o \
                     JOIN customers c ON o.customer = c.cid GROUP BY c.region ORDER BY 1",
                )
                .await,
        );
        assert_eq!(
            by_region,
            [
                "r0 | 400 | 401600",
                "r1 | 300 | 299400",
                "r2 | 300 | 300000"
            ]
        );

        // Plaintext against the TLS port fails cleanly, within a bound.
        let plain_url = cluster.url.replacen("grpc+tls://", "grpc://", 1);
        let plaintext = tokio::time::timeout(Duration::from_secs(20), async {
            match TestClient::try_connect(&plain_url).await {
                Err(e) => Err(e),
                Ok(mut plain) => plain
                    .query("SELECT 1")
                    .await
                    .map(|_| ())
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
            }
        })
        .await
        .expect("a plaintext client gets an answer, not a hang");
        assert!(plaintext.is_err(), "plaintext was served");
        // A client that does not trust the authority is refused.
        let stranger = TestCertificates::for_names(&["127.0.0.1"]);
        let untrusted = tokio::time::timeout(Duration::from_secs(20), async {
            match TestClient::try_connect_tls(&cluster.url, Some(&stranger.trust())).await {
                Err(e) => Err(e),
                Ok(mut c) => c
                    .query("SELECT 1")
                    .await
                    .map(|_| ())
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
            }
        })
        .await
        .expect("no hang");
        assert!(untrusted.is_err(), "a client with another CA was served");

        // The workers serve TLS only, and only to cluster members.
        let port = client
            .scalar("SELECT nodeport FROM pg_dist_node ORDER BY nodeid LIMIT 1")
            .await;
        let worker_plain = tokio::time::timeout(Duration::from_secs(20), async {
            let channel =
                tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                    .expect("url")
                    .connect()
                    .await;
            match channel {
                Err(e) => Err(e.to_string()),
                Ok(channel) => FlightServiceClient::new(channel)
                    .do_get(Ticket::new("anything"))
                    .await
                    .map(|_| ())
                    .map_err(|s| s.to_string()),
            }
        })
        .await
        .expect("no hang");
        assert!(worker_plain.is_err());
        let channel = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{port}"))
            .expect("url")
            .tls_config(trust.client_config())
            .expect("tls")
            .connect()
            .await
            .expect("TLS to the worker");
        let status = FlightServiceClient::new(channel)
            .do_get(Ticket::new("anything"))
            .await
            .expect_err("refused without the cluster secret");
        assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());

        // The server went on serving through all of that.
        assert_eq!(client.scalar("SELECT count(*) FROM customers").await, "10");
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
