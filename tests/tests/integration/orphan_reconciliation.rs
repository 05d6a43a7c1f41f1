//! `citus_cleanup_orphaned_resources()` deletes the shard files on the workers that the
//! catalog does not list once they are older than the grace period (one hour by default),
//! and keeps younger ones and every listed file.

use std::path::Path;
use std::time::{Duration, SystemTime};

use shardfusion_tests::TestCluster;
use shardfusion_tests::shard_files::{cluster_files_in_catalog, cluster_files_on_disk};

fn plant(path: &Path, age: Duration) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, b"not a real parquet file").expect("write");
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(SystemTime::now() - age)
        .expect("set mtime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cleanup_removes_old_unlisted_files_only() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
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
        let listed = cluster_files_in_catalog(cluster.coordinator());
        assert_eq!(cluster_files_on_disk(cluster.data_dir()), listed);

        // What a crashed write or a lost deletion leaves: a finished file, a staging file,
        // a file of a table that no longer exists. And one written a moment ago.
        let first = listed
            .first()
            .expect("a listed file")
            .rsplit_once('/')
            .expect("a directory")
            .0
            .to_string();
        let hours = Duration::from_secs(2 * 3600);
        let worker = cluster.data_dir().join("worker-1");
        let second = cluster.data_dir().join("worker-2");
        let old = [
            worker.join(format!(
                "{first}/00000000-0000-4000-8000-000000000001.parquet"
            )),
            worker.join(format!(
                "{first}/00000000-0000-4000-8000-000000000002.parquet#7"
            )),
            second.join("shards/t999/s1/00000000-0000-4000-8000-000000000003.parquet"),
        ];
        for path in &old {
            plant(path, hours);
        }
        let fresh = second.join(format!(
            "{first}/00000000-0000-4000-8000-000000000004.parquet"
        ));
        plant(&fresh, Duration::from_secs(60));

        let removed = client
            .scalar("SELECT citus_cleanup_orphaned_resources()")
            .await;
        assert_eq!(removed, "3");
        for path in &old {
            assert!(!path.exists(), "{} was kept", path.display());
        }
        assert!(
            fresh.exists(),
            "a file younger than the grace period was removed"
        );
        let mut expected = listed.clone();
        expected.push(format!(
            "{first}/00000000-0000-4000-8000-000000000004.parquet"
        ));
        expected.sort();
        assert_eq!(cluster_files_on_disk(cluster.data_dir()), expected);
        assert_eq!(client.scalar("SELECT count(*) FROM items").await, "1000");
        // Nothing left to do.
        assert_eq!(
            client
                .scalar("SELECT citus_cleanup_orphaned_resources()")
                .await,
            "0"
        );
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
