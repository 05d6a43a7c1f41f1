//! A stopped worker fails the queries that touch it within the worker timeout, with
//! `Unavailable` naming the worker; queries that do not touch it are unaffected; after it
//! restarts on the same port, the first query works; a killed worker is `Unavailable` too.
//!
//! Regression test for issue 10 #5: after a worker was SIGSTOPped mid-query, no answer came
//! after 62 s, and new queries touching it hung as well (no keepalive, no deadlines).

use std::time::{Duration, Instant};

use shardfusion_benchmarks::processes::{ProcessCluster, shardfusion_binary};
use shardfusion_tests::TestClient;
use tonic::Code;

/// The worker timeout the coordinator runs with here (the default is 30 s).
const TIMEOUT_SECS: u64 = 3;

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// A distribution value whose shard lives on the worker listening on `port`.
async fn key_on(client: &mut TestClient, port: u16) -> i64 {
    for key in 1..500 {
        let shard = client
            .scalar(&format!(
                "SELECT get_shard_id_for_distribution_column('t', {key})"
            ))
            .await;
        let node_port = client
            .scalar(&format!(
                "SELECT nodeport FROM citus_shards WHERE shardid = {shard}"
            ))
            .await;
        if node_port == port.to_string() {
            return key;
        }
    }
    panic!("no key of t lives on the worker at port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_fails_only_its_queries_and_comes_back() {
    let binary = shardfusion_binary().expect("the shardfusion binary is built next to the tests");
    tokio::time::timeout(Duration::from_secs(240), async {
        let timeout = TIMEOUT_SECS.to_string();
        let mut cluster = ProcessCluster::start_with_env(
            &binary,
            2,
            &[("SHARDFUSION_WORKER_TIMEOUT_SECS", timeout.as_str())],
        )
        .await
        .expect("processes start");
        let mut client = TestClient::connect(&cluster.url).await;
        client
            .run("CREATE TABLE t (id BIGINT NOT NULL, v BIGINT)")
            .await;
        client
            .run("SELECT create_distributed_table('t', 'id', shard_count => 4)")
            .await;
        client
            .run("INSERT INTO t SELECT value, value * 10 FROM generate_series(1, 1000) AS s(value)")
            .await;
        let stopped_port = cluster.worker_port(1).expect("worker 2's port");
        let other_port = cluster.worker_port(0).expect("worker 1's port");
        let healthy_key = key_on(&mut client, other_port).await;

        signal(cluster.worker_pid(1).expect("worker 2 runs"), "STOP");
        for _ in 0..2 {
            let started = Instant::now();
            let status = client
                .query("SELECT count(*), sum(v) FROM t")
                .await
                .expect_err("a query touching a stopped worker fails");
            let elapsed = started.elapsed();
            assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
            assert!(
                status.message().contains(&stopped_port.to_string()),
                "the error names the worker: {}",
                status.message()
            );
            assert!(
                elapsed < Duration::from_secs(TIMEOUT_SECS * 4),
                "failed only after {elapsed:?}"
            );
            // A query routed to the other worker is unaffected.
            let started = Instant::now();
            assert_eq!(
                client
                    .scalar(&format!("SELECT v FROM t WHERE id = {healthy_key}"))
                    .await,
                (healthy_key * 10).to_string()
            );
            assert!(started.elapsed() < Duration::from_secs(TIMEOUT_SECS));
        }

        // The worker restarts on the same port: the first query works.
        signal(cluster.worker_pid(1).expect("worker 2 runs"), "CONT");
        cluster.restart_worker(1).expect("worker 2 restarts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", stopped_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the restarted worker never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Scans (sums): `count(*)` is answered from the catalog's row counts, without workers.
        assert_eq!(
            client.scalar("SELECT sum(v) FROM t").await,
            "5005000",
            "the first query after the restart"
        );

        // A killed worker is Unavailable, named.
        signal(cluster.worker_pid(1).expect("worker 2 runs"), "KILL");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status = client
            .query("SELECT sum(v) FROM t")
            .await
            .expect_err("a query touching a killed worker fails");
        assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
        assert!(
            status.message().contains(&stopped_port.to_string()),
            "{}",
            status.message()
        );
    })
    .await
    .expect("the test finishes within 240 s");
}
