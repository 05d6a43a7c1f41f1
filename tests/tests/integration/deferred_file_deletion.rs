//! Files die late. Deleting the files of a dropped table from a worker that is down is not
//! forgotten: the deletions wait in `pg_dist_cleanup` and are carried out when the worker is
//! back, and then their records go. And a query that started before a DROP, TRUNCATE or
//! shard move keeps reading the files it planned with: they are deleted only after it ends.

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

        // The reachable worker's files go as soon as no older statement runs (at once here);
        // the others are owed, on record.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cluster_files_on_disk(&second_dir).is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the reachable worker's files are deleted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// Reads the rest of `stream`, returning how many rows it had.
async fn rows_left(
    mut stream: impl futures::Stream<
        Item = Result<arrow::array::RecordBatch, arrow_flight::error::FlightError>,
    > + Unpin,
) -> Result<usize, String> {
    use futures::StreamExt;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.map_err(|e| e.to_string())?.num_rows();
    }
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_older_than_a_drop_truncate_or_move_reads_to_its_end() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        for name in ["dropped", "truncated", "moved"] {
            client
                .run(&format!(
                    "CREATE TABLE {name} (id BIGINT NOT NULL, pad TEXT)"
                ))
                .await;
            client
                .run(&format!(
                    "SELECT create_distributed_table('{name}', 'id', shard_count => 2)"
                ))
                .await;
            // Many small files per shard, so the scan opens them one after the other.
            for round in 0..20 {
                client
                    .run(&format!(
                        "INSERT INTO {name} SELECT v, repeat('x', 200) FROM \
                         generate_series({}, {}) t(v)",
                        round * 5000 + 1,
                        round * 5000 + 5000
                    ))
                    .await;
            }
        }
        let other = client.scalar("SELECT max(nodeid) FROM pg_dist_node").await;
        let first = client.scalar("SELECT min(nodeid) FROM pg_dist_node").await;
        let shard = client
            .scalar(&format!(
                "SELECT min(shardid) FROM citus_shards WHERE table_name = 'moved' \
                 AND nodeport = (SELECT nodeport FROM pg_dist_node WHERE nodeid = {first})"
            ))
            .await;
        for (name, change) in [
            ("dropped", "DROP TABLE dropped".to_string()),
            ("truncated", "TRUNCATE truncated".to_string()),
            (
                "moved",
                format!("SELECT citus_move_shard_placement({shard}, {first}, {other})"),
            ),
        ] {
            let mut reader = cluster.client().await;
            let mut stream = reader
                .stream(&format!("SELECT id, pad FROM {name}"))
                .await
                .expect("the query starts");
            use futures::StreamExt;
            let first = stream
                .next()
                .await
                .expect("a first batch")
                .expect("it reads")
                .num_rows();
            // The change commits while the query is still reading.
            client.run(&change).await;
            let rest = rows_left(stream).await;
            assert_eq!(
                rest.map(|r| r + first),
                Ok(100_000),
                "the query older than `{change}` read every row it planned to"
            );
        }
        // Once nothing older runs, the files of the dropped table are gone from every worker.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let on_disk: Vec<String> = ["worker-1", "worker-2"]
                .iter()
                .flat_map(|w| cluster_files_on_disk(&cluster.data_dir().join(w)))
                .collect();
            let catalog =
                shardfusion_tests::shard_files::cluster_files_in_catalog(cluster.coordinator());
            let mut expected = catalog.clone();
            expected.sort();
            let mut found = on_disk.clone();
            found.sort();
            if found == expected {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the disks hold exactly the catalog's files: {found:?} vs {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(client.scalar("SELECT count(*) FROM moved").await, "100000");
        cluster.shutdown().await;
    })
    .await
    .expect("the test finishes within 180 s");
}
