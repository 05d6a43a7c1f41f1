//! `create_distributed_table` on a table that is being written to: every acknowledged INSERT
//! survives the move of the table's rows into shards, and an INSERT that is refused is refused
//! with the retryable serialization failure (`Aborted`, SQLSTATE 40001), never silently lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use shardfusion_tests::conflict::is_retryable_conflict;
use shardfusion_tests::{TestClient, TestCluster};

const INITIAL_ROWS: i64 = 5_000_000;
const WRITERS: i64 = 8;
const BATCH_ROWS: i64 = 50;
/// Writer `w` inserts ids from `WRITER_BASE * (w + 1)` up, far above the initial rows.
const WRITER_BASE: i64 = 100_000_000;

/// What one writer saw.
#[derive(Debug, Default)]
struct WriterLog {
    acknowledged_rows: i64,
    acknowledged_id_sum: i64,
    /// Acknowledged INSERTs that started after the distribution started and ended before it
    /// ended: the ones the move must not lose.
    acknowledged_during_move: u64,
    refused: u64,
    unexpected: Vec<String>,
}

/// Inserts batches until `stop` is set; remembers exactly what was acknowledged.
async fn writer(
    url: String,
    index: i64,
    stop: Arc<AtomicBool>,
    move_window: Arc<MoveWindow>,
) -> WriterLog {
    let mut client = TestClient::connect(&url).await;
    let mut log = WriterLog::default();
    let mut next = WRITER_BASE * (index + 1);
    while !stop.load(Ordering::Relaxed) {
        let (first, last) = (next, next + BATCH_ROWS - 1);
        next += BATCH_ROWS;
        let started = Instant::now();
        let sql = format!(
            "INSERT INTO events SELECT value, value % 1000 FROM generate_series({first}, {last})"
        );
        match client.update(&sql).await {
            Ok(rows) => {
                assert_eq!(rows, BATCH_ROWS, "an INSERT reports the rows it wrote");
                log.acknowledged_rows += rows;
                log.acknowledged_id_sum += (first..=last).sum::<i64>();
                if move_window.contains(started, Instant::now()) {
                    log.acknowledged_during_move += 1;
                }
            }
            Err(status) if is_retryable_conflict(&status) => log.refused += 1,
            Err(status) => {
                log.unexpected
                    .push(format!("{:?}: {}", status.code(), status.message()))
            }
        }
    }
    log
}

/// When the distribution started and ended, once known.
#[derive(Default)]
struct MoveWindow {
    start: OnceLock<Instant>,
    end: OnceLock<Instant>,
}

impl MoveWindow {
    /// Whether `[from, to]` lies inside the window (an end not yet known counts as later).
    fn contains(&self, from: Instant, to: Instant) -> bool {
        match self.start.get() {
            Some(start) if *start <= from => self.end.get().is_none_or(|end| to <= *end),
            _ => false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_during_create_distributed_table_are_never_lost() {
    tokio::time::timeout(Duration::from_secs(110), run())
        .await
        .expect("the test finishes within its time bound");
}

async fn run() {
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    client
        .run("CREATE TABLE events (id BIGINT NOT NULL, v BIGINT NOT NULL)")
        .await;
    let loaded = Instant::now();
    client
        .update(&format!(
            "INSERT INTO events SELECT value, value % 1000 FROM generate_series(1, {INITIAL_ROWS})"
        ))
        .await
        .expect("initial load");
    eprintln!("loaded {INITIAL_ROWS} rows in {:?}", loaded.elapsed());

    let stop = Arc::new(AtomicBool::new(false));
    let window = Arc::new(MoveWindow::default());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                cluster.url.clone(),
                w,
                Arc::clone(&stop),
                Arc::clone(&window),
            ))
        })
        .collect();
    // Let the writers get going, so the move starts with INSERTs in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _ = window.start.set(Instant::now());
    let distributed = Instant::now();
    let outcome = client
        .query("SELECT create_distributed_table('events', 'id')")
        .await;
    let _ = window.end.set(Instant::now());
    eprintln!("distributed in {:?}", distributed.elapsed());
    // Writers keep going into the new shards for a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = WriterLog::default();
    for handle in writers {
        let log = handle.await.expect("writer task");
        total.acknowledged_rows += log.acknowledged_rows;
        total.acknowledged_id_sum += log.acknowledged_id_sum;
        total.acknowledged_during_move += log.acknowledged_during_move;
        total.refused += log.refused;
        total.unexpected.extend(log.unexpected);
    }
    eprintln!(
        "acknowledged {} rows ({} INSERTs during the move), refused {} INSERTs",
        total.acknowledged_rows, total.acknowledged_during_move, total.refused
    );
    if let Err(status) = outcome {
        panic!(
            "create_distributed_table failed: {:?} {}",
            status.code(),
            status.message()
        );
    }
    assert_eq!(
        client
            .scalar("SELECT partmethod FROM pg_dist_partition WHERE logicalrelid = 'events'")
            .await,
        "h"
    );
    let expected_rows = INITIAL_ROWS + total.acknowledged_rows;
    let expected_sum = INITIAL_ROWS * (INITIAL_ROWS + 1) / 2 + total.acknowledged_id_sum;
    assert_eq!(
        client.scalar("SELECT count(*) FROM events").await,
        expected_rows.to_string(),
        "every acknowledged row is there, and no refused one"
    );
    assert_eq!(
        client.scalar("SELECT sum(id) FROM events").await,
        expected_sum.to_string()
    );
    assert!(
        total.unexpected.is_empty(),
        "INSERTs may only fail with the retryable conflict (Aborted, 40001): {:?}",
        total.unexpected
    );
    assert!(
        total.acknowledged_during_move > 0,
        "the test must acknowledge INSERTs while the rows move"
    );

    cluster.shutdown().await;
}
