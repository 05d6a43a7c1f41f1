//! `citus_add_node` on a host that does not know the cluster secret: the host never receives
//! the secret or anything that authenticates as the coordinator, is refused with a clear
//! error, never appears in `pg_dist_node`, and is shipped no rows afterwards. Checked against
//! the in-process cluster (`local` mode) and against separate `shardfusion` processes.

#[path = "support/fake_node.rs"]
mod fake_node;

use std::time::Duration;

use fake_node::FakeNode;
use shardfusion_benchmarks::processes::{ProcessCluster, shardfusion_binary};
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

/// Adds `fake` with `citus_add_node`, then distributes and fills a table; asserts what the
/// fake received and what the cluster reports.
async fn fake_node_is_refused(client: &mut TestClient, fake: &FakeNode, secret: &str) {
    let nodes_before = client.scalar("SELECT count(*) FROM pg_dist_node").await;
    let added = client
        .query(&format!(
            "SELECT citus_add_node('127.0.0.1', {})",
            fake.port
        ))
        .await;

    // Nothing the fake received carries the secret, or any ShardFusion credential.
    for request in fake.requests() {
        for (key, value) in &request.headers {
            assert!(
                !value.contains(secret),
                "the fake node received the cluster secret in header {key} of {}",
                request.method
            );
            assert!(
                !key.starts_with("x-shardfusion"),
                "the fake node received a ShardFusion credential ({key}: {value}) in {}",
                request.method
            );
        }
    }

    let status = match added {
        Ok(_) => panic!("citus_add_node added a host that cannot prove the cluster secret"),
        Err(status) => status,
    };
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );
    assert!(
        status
            .message()
            .contains("did not prove that it knows this cluster's secret"),
        "{}",
        status.message()
    );
    assert_eq!(
        client.scalar("SELECT count(*) FROM pg_dist_node").await,
        nodes_before
    );
    assert_eq!(
        client
            .scalar(&format!(
                "SELECT count(*) FROM pg_dist_node WHERE nodeport = {}",
                fake.port
            ))
            .await,
        "0"
    );

    client
        .run("CREATE TABLE membership_check (k INT NOT NULL, v TEXT)")
        .await;
    client
        .run("SELECT create_distributed_table('membership_check', 'k', shard_count => 8)")
        .await;
    client
        .run(
            "INSERT INTO membership_check SELECT CAST(value AS INT), 'row' FROM \
             generate_series(1, 200)",
        )
        .await;
    assert_eq!(
        client.scalar("SELECT count(*) FROM membership_check").await,
        "200"
    );
    let requests = fake.requests();
    assert!(
        requests.iter().all(|r| r.method == "DoAction"
            && r.action.as_deref() == Some("shardfusion.prove_membership")),
        "the fake node was asked for more than a membership proof: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_the_secret_is_never_added_in_process() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let fake = FakeNode::start().await;
        let mut client = cluster.client().await;
        fake_node_is_refused(&mut client, &fake, "test-cluster-secret").await;
        fake.stop().await;
        cluster.shutdown().await;
    })
    .await
    .expect("the test finishes within 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_the_secret_is_never_added_to_separate_processes() {
    let binary = shardfusion_binary().expect(
        "the shardfusion binary is built next to the tests (cargo build --workspace \
         --all-targets) or named by SHARDFUSION_BIN",
    );
    tokio::time::timeout(Duration::from_secs(180), async {
        let cluster = ProcessCluster::start(&binary, 2)
            .await
            .expect("the process cluster starts");
        let fake = FakeNode::start().await;
        let mut client = TestClient::connect(&cluster.url).await;
        fake_node_is_refused(&mut client, &fake, ProcessCluster::SECRET).await;
        fake.stop().await;
        drop(cluster);
    })
    .await
    .expect("the test finishes within 180 s");
}
