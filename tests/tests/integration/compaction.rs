//! Compaction of the small files point `INSERT`s leave, as a client sees it: queries running
//! all the while get exactly the answers they got before, the shard ends up as one file
//! sorted by the distribution column, and the replaced files are gone from the disks once
//! no query can read them — whether compaction was asked for
//! (`shardfusion_compact_table`) or ran in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use shardfusion_scheduler::cluster::compaction::CompactionConfig;
use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::rows;
use shardfusion_tests::shard_files::on_disk;

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(id), sum(tenant) FROM events",
    "SELECT id, tenant, payload FROM events WHERE id = 17",
    "SELECT id, payload FROM events WHERE id IN (3, 29, 1001) ORDER BY id",
    "SELECT id FROM events ORDER BY id DESC LIMIT 4",
    "SELECT tenant, count(*), min(id), max(id) FROM events GROUP BY tenant ORDER BY tenant",
];

async fn answers(client: &mut shardfusion_tests::TestClient) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for sql in QUERIES {
        out.push(rows(&client.run(sql).await));
    }
    out
}

/// Inserts rows `ids`, one statement (so one file) each.
async fn point_inserts(client: &mut shardfusion_tests::TestClient, ids: impl Iterator<Item = i64>) {
    for id in ids {
        client
            .run(&format!(
                "INSERT INTO events VALUES ({id}, {}, 'event {id}')",
                id % 5
            ))
            .await;
    }
}

/// Runs [`QUERIES`] over and over until `stop`, checking each answer against `expected`.
fn keep_reading(
    url: String,
    expected: Vec<Vec<String>>,
    stop: Arc<AtomicBool>,
    runs: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut client = shardfusion_tests::TestClient::connect(&url).await;
        while !stop.load(Ordering::Relaxed) {
            for (sql, expected) in QUERIES.iter().zip(&expected) {
                let got = client
                    .query(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql} failed during compaction: {e}"));
                assert_eq!(&rows(&got), expected, "{sql} changed during compaction");
            }
            runs.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Waits until the disks hold `files` shard files; returns them.
async fn wait_for_files(cluster: &TestCluster, files: usize) -> Vec<std::path::PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = on_disk(cluster.data_dir());
        if found.len() == files {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "expected {files} shard files, found {}: {found:?}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_sorted_by_id(path: &std::path::Path) -> usize {
    let file = std::fs::File::open(path).expect("open shard file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a Parquet file")
        .build()
        .expect("reader");
    let mut ids = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let column = batch.column(0);
        let column = column.as_any().downcast_ref::<Int64Array>().expect("ids");
        ids.extend((0..column.len()).map(|i| column.value(i)));
    }
    assert!(ids.is_sorted(), "{path:?} is sorted by id: {ids:?}");
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_merges_small_files_without_changing_any_answer() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let compaction = &cluster.coordinator().cluster().compaction;
        compaction.set_config(CompactionConfig {
            interval: Duration::ZERO,
            min_files: 4,
            ..CompactionConfig::default()
        });
        let mut client = cluster.client().await;
        client
            .run("CREATE TABLE events (id BIGINT NOT NULL, tenant INT, payload TEXT)")
            .await;
        client
            .run("SELECT create_distributed_table('events', 'id', shard_count => 2)")
            .await;
        // 40 rows in scrambled order, one file each.
        point_inserts(&mut client, (0..40).map(|i| (i * 17) % 40 + 1)).await;
        assert_eq!(on_disk(cluster.data_dir()).len(), 40);
        let before = answers(&mut client).await;
        assert_eq!(before[0], ["40 | 820 | 80"]);
        assert_eq!(before[1], ["17 | 2 | event 17"]);

        // Asked for, with queries running all the while.
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicUsize::new(0));
        let reader = keep_reading(
            cluster.url.clone(),
            before.clone(),
            Arc::clone(&stop),
            Arc::clone(&runs),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let replaced = client
            .scalar("SELECT shardfusion_compact_table('events')")
            .await;
        assert_eq!(replaced, "40", "every small file was replaced");
        let files = wait_for_files(&cluster, 2).await;
        let compacted: usize = files.iter().map(|f| assert_sorted_by_id(f)).sum();
        assert_eq!(compacted, 40, "every row is in the compacted files, once");
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        reader
            .await
            .expect("the reader saw the same answers throughout");
        assert!(
            runs.load(Ordering::Relaxed) > 0,
            "queries ran during compaction"
        );
        assert_eq!(answers(&mut client).await, before);
        assert_eq!(
            client
                .scalar("SELECT shardfusion_compact_table('events')")
                .await,
            "0",
            "nothing left to compact"
        );

        // In the background, as point inserts keep coming.
        point_inserts(&mut client, 41..=52).await;
        let after_inserts = answers(&mut client).await;
        assert_eq!(after_inserts[0], ["52 | 1378 | 103"]);
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicUsize::new(0));
        let reader = keep_reading(
            cluster.url.clone(),
            after_inserts.clone(),
            Arc::clone(&stop),
            Arc::clone(&runs),
        );
        compaction.set_config(CompactionConfig {
            interval: Duration::from_millis(200),
            min_files: 2,
            ..CompactionConfig::default()
        });
        let files = wait_for_files(&cluster, 2).await;
        let compacted: usize = files.iter().map(|f| assert_sorted_by_id(f)).sum();
        assert_eq!(compacted, 52);
        stop.store(true, Ordering::Relaxed);
        reader
            .await
            .expect("the reader saw the same answers throughout");
        assert_eq!(answers(&mut client).await, after_inserts);
        assert_eq!(
            client.scalar("SELECT count(*) FROM pg_dist_cleanup").await,
            "0",
            "no deletion is left owed"
        );

        // A reference table: one copy per worker, each with files of its own.
        compaction.set_config(CompactionConfig {
            interval: Duration::ZERO,
            min_files: 4,
            ..CompactionConfig::default()
        });
        client
            .run("CREATE TABLE plans (id BIGINT NOT NULL, name TEXT)")
            .await;
        client.run("SELECT create_reference_table('plans')").await;
        for id in [5, 3, 6, 1, 4, 2] {
            client
                .run(&format!("INSERT INTO plans VALUES ({id}, 'plan {id}')"))
                .await;
        }
        let sql = "SELECT count(*), sum(id), min(name) FROM plans";
        let before = rows(&client.run(sql).await);
        assert_eq!(before, ["6 | 21 | plan 1"]);
        assert_eq!(
            client
                .scalar("SELECT shardfusion_compact_table('plans')")
                .await,
            "12",
            "six files on each of the two workers"
        );
        assert_eq!(rows(&client.run(sql).await), before);
        let joined = "SELECT e.id, p.name FROM events e JOIN plans p ON e.tenant + 1 = p.id \
                      WHERE e.id = 17";
        assert_eq!(rows(&client.run(joined).await), ["17 | plan 3"]);
    })
    .await
    .expect("the test finishes within 240 s");
}
