//! A write that does not complete leaves no file behind: not when the client goes away in the
//! middle of a bulk ingest (its process dies, or it cancels the call), and not when a worker
//! dies during it (on the surviving workers, and on the dead one once it restarted and its
//! files were reconciled). Every shard file on any node's disk is one the catalog lists.
//!
//! Regression tests for issue 10 #6. The client tests run against separate `shardfusion`
//! processes, as the defect was seen. A worker is paused (SIGSTOP) so that the coordinator is
//! waiting on that worker, not reading from the client, when the client goes: the statement
//! was then dropped without aborting its writes, its streams to the workers ended cleanly,
//! and the workers kept complete files that the catalog never listed (4 per statement here).
//! The disks are compared with the files there before the ingest, as a separate
//! coordinator's catalog cannot be read from the test.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::error::FlightError;
use shardfusion_benchmarks::processes::{ProcessCluster, shardfusion_binary};
use shardfusion_scheduler::cluster::orphan_cleanup::OrphanCleanupConfig;
use shardfusion_tests::shard_files::{cluster_files_in_catalog, cluster_files_on_disk};
use shardfusion_tests::{TestClient, TestCluster};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;

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

async fn create_table(client: &mut TestClient) {
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
        client.ingest("events", ReceiverStream::new(receiver)).await
    });
    (sender, ingest)
}

/// Waits (bounded) until the disks hold exactly the files the catalog lists; returns both.
async fn settle(cluster: &TestCluster) -> (Vec<String>, Vec<String>) {
    shardfusion_tests::shard_files::settle(cluster, Duration::from_secs(15)).await
}

/// How the ingesting client goes away in the middle of its ingest.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Departure {
    /// The client process dies (crash, `kill`, Ctrl-C): its runtime goes with every task in
    /// it and the socket is closed, so the coordinator sees the connection end.
    Dies,
    /// The client cancels the call (drops it) and lives on: its HTTP/2 stack resets the stream
    /// (`RST_STREAM`) while the connection stays open.
    CancelsTheCall,
}

/// The outcome of an ingest call, if it finished before the client dropped it.
type CallOutcome = Option<Result<i64, tonic::Status>>;

/// An ingesting client with its own Tokio runtime on its own thread, standing for a separate
/// client process: when it dies, its connection and every task of its HTTP/2 stack go with
/// it, which no task of the test's own runtime could show.
struct ClientProcess {
    departures: mpsc::UnboundedSender<Departure>,
    call_ended: Option<oneshot::Receiver<CallOutcome>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClientProcess {
    /// Starts a bulk ingest into `events` on a connection of its own, fed through the
    /// returned sender (the client's request body).
    fn start(url: &str) -> (Self, BatchSender) {
        let (batches, receiver) = mpsc::channel(2);
        let (departures, mut departure) = mpsc::unbounded_channel::<Departure>();
        let (ended, call_ended) = oneshot::channel::<CallOutcome>();
        let url = url.to_string();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime");
            runtime.block_on(async move {
                let mut client = shardfusion_tests::TestClient::connect(&url).await;
                let how = tokio::select! {
                    outcome = client.ingest("events", ReceiverStream::new(receiver)) => {
                        let _ = ended.send(Some(outcome));
                        return;
                    }
                    how = departure.recv() => how,
                };
                // The call's future is gone (dropped when the select ended).
                let _ = ended.send(None);
                if how == Some(Departure::CancelsTheCall) {
                    // Live on, connection open, until told to exit.
                    let _ = departure.recv().await;
                }
                drop(client);
            });
            // Dropping the runtime drops every task it still has, the connection's included:
            // the socket closes as when a process exits.
            drop(runtime);
        });
        let client = Self {
            departures,
            call_ended: Some(call_ended),
            thread: Some(thread),
        };
        (client, batches)
    }

    /// Leaves the ingest as `how` says; returns once the call is gone (and, when the client
    /// dies, the whole client with it).
    async fn leave(&mut self, how: Departure) {
        self.departures.send(how).expect("the client is running");
        let call_ended = self.call_ended.take().expect("the client left once");
        let outcome = call_ended.await.expect("the client reports its call");
        assert!(
            outcome.is_none(),
            "the ingest ended before the client left: {outcome:?}"
        );
        if how == Departure::Dies {
            self.join().await;
        }
    }

    /// Waits for the client's thread (and so its runtime) to end.
    async fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .expect("join the client thread")
                .expect("the client thread did not panic");
        }
    }

    /// Ends the client if it still runs.
    async fn exit(mut self) {
        let _ = self.departures.send(Departure::Dies);
        self.join().await;
    }
}

/// Feeds `batches` as fast as the ingest takes them, until it no longer reads them; counts
/// the batches taken in `sent`.
async fn feed(batches: BatchSender, sent: watch::Sender<usize>) {
    let rows: Vec<RecordBatch> = (0..4).map(|i| batch(1_000 + i * ROWS_PER_BATCH)).collect();
    for rows in rows.iter().cycle() {
        if batches.send(Ok(rows.clone())).await.is_err() {
            return;
        }
        sent.send_modify(|n| *n += 1);
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// A worker process paused with SIGSTOP; it continues (SIGCONT) when this is dropped, even if
/// the test fails first.
struct Paused(u32);

impl Paused {
    fn pause(pid: u32) -> Self {
        signal(pid, "STOP");
        Self(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

/// The directory holding the nodes' data directories: the parent of the coordinator's
/// `--data-dir`, read from its command line.
fn cluster_dir(cluster: &ProcessCluster) -> std::path::PathBuf {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", cluster.coordinator_pid()))
        .expect("the coordinator's command line");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let data_dir = args
        .iter()
        .skip_while(|a| *a != "--data-dir")
        .nth(1)
        .expect("the coordinator runs with --data-dir");
    std::path::Path::new(data_dir)
        .parent()
        .expect("the coordinator's data dir has a parent")
        .to_path_buf()
}

/// Waits (bounded) until the shard files on the cluster's disks are `expected`; returns them.
async fn settle_to(dir: &std::path::Path, expected: &[String]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let on_disk = cluster_files_on_disk(dir);
        if on_disk == expected || tokio::time::Instant::now() > deadline {
            return on_disk;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client that leaves (as `how` says) in the middle of an ingest into separate processes,
/// while the coordinator waits on a paused worker: afterwards the disks hold only the files
/// of committed rows, and the table holds only those rows.
async fn client_leaving_mid_ingest_leaves_no_files(how: Departure) {
    let binary = shardfusion_binary().expect(
        "the shardfusion binary is built next to the tests (cargo build --workspace \
         --all-targets) or named by SHARDFUSION_BIN",
    );
    let cluster = ProcessCluster::start(&binary, 2)
        .await
        .expect("the process cluster starts");
    let dir = cluster_dir(&cluster);
    let mut reader = TestClient::connect(&cluster.url).await;
    create_table(&mut reader).await;
    let committed = cluster_files_on_disk(&dir);
    assert!(
        !committed.is_empty(),
        "the committed rows are in shard files"
    );

    let (mut client, batches) = ClientProcess::start(&cluster.url);
    let (sent, mut taken) = watch::channel(0);
    let feeder = tokio::spawn(feed(batches, sent));
    // 20 batches (400,000 rows, 100,000 per shard): every shard's stream to its worker is
    // open and holds rows.
    taken
        .wait_for(|n| *n >= 20)
        .await
        .expect("the ingest takes 20 batches");
    // With one worker paused, the coordinator soon waits on it and stops reading from the
    // client: wait until the client's stream has not moved for a second.
    let paused = Paused::pause(cluster.worker_pid(0).expect("worker 1 runs"));
    loop {
        let before = *taken.borrow();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if *taken.borrow() == before {
            break;
        }
    }
    client.leave(how).await;
    // The client's HTTP/2 stack no longer reads the request body: the stream was reset or
    // the connection closed, so the coordinator is told. (Were the ingest merely stalled,
    // this test would prove nothing.)
    tokio::time::timeout(Duration::from_secs(10), feeder)
        .await
        .expect("the client still reads its request body after leaving")
        .expect("feeder task");
    // The worker stays paused until the coordinator has surely seen the client go (a reset
    // or a closed socket reaches it within milliseconds): it must notice while it is waiting
    // on the worker, not after the worker caught up and it went back to reading the client.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(paused);

    let on_disk = settle_to(&dir, &committed).await;
    assert_eq!(
        on_disk, committed,
        "shard files on disk that no committed statement wrote, after a client {how:?} \
         mid-ingest"
    );
    assert_eq!(
        reader.scalar("SELECT count(*) FROM events").await,
        "4",
        "rows of an ingest whose client {how:?} are visible"
    );
    client.exit().await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_process_that_dies_mid_ingest_leaves_no_files() {
    tokio::time::timeout(
        Duration::from_secs(180),
        client_leaving_mid_ingest_leaves_no_files(Departure::Dies),
    )
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_that_cancels_its_ingest_call_leaves_no_files() {
    tokio::time::timeout(
        Duration::from_secs(180),
        client_leaving_mid_ingest_leaves_no_files(Departure::CancelsTheCall),
    )
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
        create_table(&mut cluster.client().await).await;
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
