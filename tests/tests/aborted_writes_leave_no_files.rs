//! A write that does not complete leaves no file behind: not when the client goes away in the
//! middle of a bulk ingest, and not when a worker dies during it (on the surviving workers,
//! and on the dead one once it restarted and its files were reconciled). Every shard file on
//! any node's disk is one the catalog lists.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::error::FlightError;
use shardfusion_scheduler::orphan_cleanup::OrphanCleanupConfig;
use shardfusion_tests::TestCluster;
use shardfusion_tests::shard_files::{cluster_files_in_catalog, cluster_files_on_disk};
use tokio::sync::mpsc;

const ROWS_PER_BATCH: i64 = 20_000;

fn batch(first: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("payload", DataType::Utf8, true),
    ]));
    let ids = first..first + ROWS_PER_BATCH;
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())) as ArrayRef,
            Arc::new(StringArray::from_iter_values(
                ids.map(|i| format!("payload {i}")),
            )),
        ],
    )
    .expect("batch")
}

async fn create_table(cluster: &TestCluster) {
    let mut client = cluster.client().await;
    client
        .run("CREATE TABLE events (id BIGINT, payload TEXT)")
        .await;
    client
        .run("SELECT create_distributed_table('events', 'id', shard_count => 4)")
        .await;
    client
        .run("INSERT INTO events VALUES (1, 'kept'), (2, 'kept'), (3, 'kept'), (4, 'kept')")
        .await;
}

/// The batches fed to a running ingest.
type BatchSender = mpsc::Sender<Result<RecordBatch, FlightError>>;
/// The running ingest: the rows it loaded, or its status.
type IngestTask = tokio::task::JoinHandle<Result<i64, tonic::Status>>;

/// Starts a bulk ingest into `events` on its own connection, fed through the returned sender.
fn start_ingest(cluster: &TestCluster) -> (BatchSender, IngestTask) {
    let (sender, receiver) = mpsc::channel(2);
    let url = cluster.url.clone();
    let ingest = tokio::spawn(async move {
        let mut client = shardfusion_tests::TestClient::connect(&url).await;
        client
            .ingest(
                "events",
                tokio_stream::wrappers::ReceiverStream::new(receiver),
            )
            .await
    });
    (sender, ingest)
}

/// Waits (bounded) until the disks hold exactly the files the catalog lists; returns both.
async fn settle(cluster: &TestCluster) -> (Vec<String>, Vec<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let on_disk = cluster_files_on_disk(cluster.data_dir());
        let in_catalog = cluster_files_in_catalog(cluster.coordinator());
        if on_disk == in_catalog || tokio::time::Instant::now() > deadline {
            return (on_disk, in_catalog);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_that_disconnects_mid_ingest_leaves_no_files() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        create_table(&cluster).await;
        let (sender, ingest) = start_ingest(&cluster);
        // Enough rows that every shard's stream to the workers is open and holds rows.
        for i in 0..10 {
            sender
                .send(Ok(batch(1_000 + i * ROWS_PER_BATCH)))
                .await
                .expect("the ingest is reading");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The client goes away without finishing its stream: its connection closes.
        ingest.abort();
        let _ = ingest.await;

        let (on_disk, in_catalog) = settle(&cluster).await;
        assert_eq!(
            on_disk, in_catalog,
            "shard files on disk that the catalog does not list"
        );
        let mut client = cluster.client().await;
        assert_eq!(client.scalar("SELECT count(*) FROM events").await, "4");
        drop(sender);
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_killed_mid_ingest_leaves_no_files_once_restarted_and_reconciled() {
    tokio::time::timeout(Duration::from_secs(120), async {
        // No grace period: anything unlisted and not being written is an orphan at once.
        let config = OrphanCleanupConfig {
            grace_period: Duration::ZERO,
            ..OrphanCleanupConfig::default()
        };
        let mut cluster = TestCluster::start_with_orphan_cleanup(2, config).await;
        create_table(&cluster).await;
        let (sender, ingest) = start_ingest(&cluster);
        for i in 0..10 {
            sender
                .send(Ok(batch(1_000 + i * ROWS_PER_BATCH)))
                .await
                .expect("the ingest is reading");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.kill_worker(0);
        // Keep sending until the statement notices the dead worker and fails.
        for i in 10..200 {
            if sender
                .send(Ok(batch(1_000 + i * ROWS_PER_BATCH)))
                .await
                .is_err()
            {
                break;
            }
        }
        drop(sender);
        let outcome = ingest.await.expect("ingest task");
        assert!(outcome.is_err(), "the ingest succeeded without a worker");
        // The surviving worker saw its streams end uncompleted and kept nothing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let in_catalog = cluster_files_in_catalog(cluster.coordinator());
        let survivor = cluster_files_on_disk(&cluster.data_dir().join("worker-2"));
        let unlisted: Vec<_> = survivor
            .iter()
            .filter(|f| !in_catalog.contains(f))
            .collect();
        assert!(
            unlisted.is_empty(),
            "files the catalog does not list on the surviving worker: {unlisted:?}"
        );

        cluster.restart_worker(0).await;
        let mut client = cluster.client().await;
        client
            .run("SELECT citus_cleanup_orphaned_resources()")
            .await;
        let (on_disk, in_catalog) = settle(&cluster).await;
        assert_eq!(
            on_disk, in_catalog,
            "shard files on disk that the catalog does not list"
        );
        assert_eq!(client.scalar("SELECT count(*) FROM events").await, "4");
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
