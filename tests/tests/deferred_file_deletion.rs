//! Deleting the files of a dropped table from a worker that is down is not forgotten: the
//! deletions wait in `pg_dist_cleanup` and are carried out when the worker is back, and then
//! their records go.

use std::time::Duration;

use shardfusion_tests::TestCluster;
use shardfusion_tests::shard_files::cluster_files_on_disk;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_table_with_a_worker_down_deletes_its_files_when_it_returns() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        client
            .run("CREATE TABLE items (id BIGINT, name TEXT)")
            .await;
        client
            .run("SELECT create_distributed_table('items', 'id', shard_count => 4)")
            .await;
        client
            .run("INSERT INTO items SELECT v, 'item ' || v FROM generate_series(1, 1000) t(v)")
            .await;
        let first_dir = cluster.data_dir().join("worker-1");
        let second_dir = cluster.data_dir().join("worker-2");
        let owed = cluster_files_on_disk(&first_dir);
        assert!(!owed.is_empty(), "worker 1 holds no files of the table");
        assert!(!cluster_files_on_disk(&second_dir).is_empty());

        cluster.kill_worker(0);
        client.run("DROP TABLE items").await;

        // The reachable worker's files are gone at once; the others are owed, on record.
        assert!(cluster_files_on_disk(&second_dir).is_empty());
        assert_eq!(cluster_files_on_disk(&first_dir), owed);
        let batches = client
            .run(
                "SELECT object_name, policy_type FROM pg_dist_cleanup \
                 WHERE node_group_id = 1 ORDER BY object_name",
            )
            .await;
        let mut recorded = Vec::new();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let name = arrow::util::display::array_value_to_string(batch.column(0), row)
                    .expect("format");
                let policy = arrow::util::display::array_value_to_string(batch.column(1), row)
                    .expect("format");
                assert_eq!(
                    policy, "2",
                    "a dropped table's files are deferred-on-success"
                );
                recorded.push(name);
            }
        }
        assert_eq!(
            recorded, owed,
            "pg_dist_cleanup does not list the owed deletions"
        );
        assert_eq!(
            client.scalar("SELECT count(*) FROM pg_dist_cleanup").await,
            owed.len().to_string()
        );

        cluster.restart_worker(0).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let pending = client.scalar("SELECT count(*) FROM pg_dist_cleanup").await;
            let left = cluster_files_on_disk(&first_dir);
            if pending == "0" && left.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "after the worker returned: {pending} records pending, files left: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
