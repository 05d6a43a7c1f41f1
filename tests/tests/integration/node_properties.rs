//! `citus_set_node_property(host, port, 'shouldhaveshards', bool)`: a node set to `false`
//! gets no shards of tables distributed afterwards and keeps those it has; `pg_dist_node`
//! shows the property; an unknown node is `NotFound`, another property or a non-boolean value
//! `InvalidArgument`.

use std::time::Duration;

use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::rows;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_shouldhaveshards_gets_no_new_shards() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        let nodes = rows(
            &c.run("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid > 0 ORDER BY nodeid")
                .await,
        );
        assert_eq!(nodes.len(), 2, "{nodes:?}");
        let (host, port) = nodes[1].split_once(" | ").expect("host | port");
        c.run("CREATE TABLE before (k INT NOT NULL)").await;
        c.run("SELECT create_distributed_table('before', 'k', shard_count => 8)")
            .await;
        c.run(&format!(
            "SELECT citus_set_node_property('{host}', {port}, 'shouldhaveshards', false)"
        ))
        .await;
        assert_eq!(
            c.scalar(&format!(
                "SELECT shouldhaveshards FROM pg_dist_node WHERE nodeport = {port}"
            ))
            .await,
            "false"
        );
        c.run("CREATE TABLE after (k INT NOT NULL)").await;
        c.run("SELECT create_distributed_table('after', 'k', shard_count => 8, colocate_with => 'none')")
            .await;
        let placed = |table: &str| {
            format!(
                "SELECT count(*) FROM citus_shards WHERE table_name = '{table}' \
                 AND nodeport = {port}"
            )
        };
        assert_eq!(c.scalar(&placed("after")).await, "0", "no new shards there");
        assert_eq!(c.scalar(&placed("before")).await, "4", "its shards stay");
        c.run("INSERT INTO after SELECT CAST(value AS INT) FROM generate_series(1, 1000)")
            .await;
        assert_eq!(c.scalar("SELECT count(*) FROM after").await, "1000");

        // Back on: new tables use it again.
        c.run(&format!(
            "SELECT citus_set_node_property('{host}', {port}, 'shouldhaveshards', 'true')"
        ))
        .await;
        c.run("CREATE TABLE again (k INT NOT NULL)").await;
        c.run("SELECT create_distributed_table('again', 'k', shard_count => 8, colocate_with => 'none')")
            .await;
        assert_eq!(c.scalar(&placed("again")).await, "4");

        c.expect_error(
            "SELECT citus_set_node_property('no-such-host', 5432, 'shouldhaveshards', false)",
            Code::NotFound,
        )
        .await;
        let message = c
            .expect_error(
                &format!("SELECT citus_set_node_property('{host}', {port}, 'noderack', 'x')"),
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("shouldhaveshards"), "{message}");
        c.expect_error(
            &format!(
                "SELECT citus_set_node_property('{host}', {port}, 'shouldhaveshards', 'maybe')"
            ),
            Code::InvalidArgument,
        )
        .await;
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
