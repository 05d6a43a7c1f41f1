//! `citus_remove_node(host, port)`: removes a node that holds no shard placements, refuses
//! (`FailedPrecondition`) one that still does, and reports an unknown node (`NotFound`).

use std::time::Duration;

use shardfusion_common::auth::ClusterSecret;
use shardfusion_executor::WorkerConfig;
use shardfusion_tests::TestCluster;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removes_empty_nodes_and_refuses_nodes_with_placements() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE held (k INT NOT NULL)").await;
        c.run("SELECT create_distributed_table('held', 'k', shard_count => 4)")
            .await;
        c.run("INSERT INTO held SELECT CAST(value AS INT) FROM generate_series(1, 100)")
            .await;

        // A third worker, added after the table was placed: it holds nothing.
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let config = WorkerConfig {
            data_dir: dir.path().to_path_buf(),
            storage: None,
            secret: ClusterSecret::new("test-cluster-secret"),
            tls: None,
            cluster_tls: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(shardfusion_executor::serve(listener, config, async {
            let _ = stopped.await;
        }));
        c.run(&format!("SELECT citus_add_node('127.0.0.1', {port})"))
            .await;
        assert_eq!(c.scalar("SELECT count(*) FROM pg_dist_node").await, "3");

        c.run(&format!("SELECT citus_remove_node('127.0.0.1', {port})"))
            .await;
        assert_eq!(c.scalar("SELECT count(*) FROM pg_dist_node").await, "2");
        assert_eq!(
            c.scalar(&format!(
                "SELECT count(*) FROM pg_dist_node WHERE nodeport = {port}"
            ))
            .await,
            "0"
        );

        // A node holding placements stays.
        let held_port = c.scalar("SELECT min(nodeport) FROM pg_dist_node").await;
        let message = c
            .expect_error(
                &format!("SELECT citus_remove_node('127.0.0.1', {held_port})"),
                Code::FailedPrecondition,
            )
            .await;
        assert!(message.contains("still holds"), "{message}");
        assert_eq!(c.scalar("SELECT count(*) FROM pg_dist_node").await, "2");
        assert_eq!(c.scalar("SELECT count(*) FROM held").await, "100");

        // Nothing is known at port 1.
        let message = c
            .expect_error("SELECT citus_remove_node('127.0.0.1', 1)", Code::NotFound)
            .await;
        assert!(message.contains("127.0.0.1:1"), "{message}");

        // The removed worker can be added again and used.
        c.run(&format!("SELECT citus_add_node('127.0.0.1', {port})"))
            .await;
        c.run("CREATE TABLE spread (k INT NOT NULL)").await;
        c.run("SELECT create_distributed_table('spread', 'k', shard_count => 6)")
            .await;
        c.run("INSERT INTO spread SELECT CAST(value AS INT) FROM generate_series(1, 60)")
            .await;
        assert_eq!(c.scalar("SELECT count(*) FROM spread").await, "60");
        assert_eq!(
            c.scalar("SELECT count(DISTINCT groupid) FROM pg_dist_placement")
                .await,
            "3"
        );

        let _ = stop.send(());
        let _ = worker.await;
        cluster.shutdown().await;
    })
    .await
    .expect("the test finishes within 120 s");
}
