//! `TRUNCATE` and `DROP TABLE` racing with statements that read the table first and commit
//! later: an acknowledged TRUNCATE or DROP is never undone by a statement that started before
//! it (a `create_distributed_table` moving the rows is refused with the retryable conflict
//! instead), and an INSERT is either committed before a TRUNCATE, committed after it, or
//! refused — never half there and never lost after it was acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shardfusion_tests::compare::rows;
use shardfusion_tests::conflict::is_retryable_conflict;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::{Code, Status};

const MOVED_ROWS: i64 = 2_000_000;

fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

async fn load(client: &mut TestClient, table: &str) {
    client
        .run(&format!(
            "CREATE TABLE {table} (id BIGINT NOT NULL, v BIGINT NOT NULL)"
        ))
        .await;
    client
        .update(&format!(
            "INSERT INTO {table} SELECT value, value % 7 FROM generate_series(1, {MOVED_ROWS})"
        ))
        .await
        .expect("load");
}

/// Starts `create_distributed_table(table)` on its own connection.
fn distribute(
    url: &str,
    table: &str,
) -> tokio::task::JoinHandle<Result<Vec<arrow::array::RecordBatch>, Status>> {
    let url = url.to_string();
    let sql = format!("SELECT create_distributed_table('{table}', 'id')");
    tokio::spawn(async move { TestClient::connect(&url).await.query(&sql).await })
}

fn parquet_files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                parquet_files_under(&path)
            } else {
                usize::from(path.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_during_create_distributed_table_is_not_undone() {
    tokio::time::timeout(Duration::from_secs(100), truncate_during_move())
        .await
        .expect("the test finishes within its time bound");
}

async fn truncate_during_move() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    load(&mut c, "moving").await;
    let move_task = distribute(&cluster.url, "moving");
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.run("TRUNCATE moving").await;
    let moved = move_task.await.expect("distribute task");
    if let Err(status) = &moved {
        assert!(
            is_retryable_conflict(status),
            "a distribution that lost the race to TRUNCATE is refused as a retryable \
             conflict: {}",
            describe(status)
        );
    }
    assert_eq!(
        c.scalar("SELECT count(*) FROM moving").await,
        "0",
        "the acknowledged TRUNCATE stays (distribution: {:?})",
        moved.as_ref().map(|_| ()).map_err(describe)
    );
    // Whatever the outcome, the table is usable and consistent afterwards.
    c.run("INSERT INTO moving VALUES (1, 1), (2, 2)").await;
    assert_eq!(c.scalar("SELECT count(*) FROM moving").await, "2");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_during_create_distributed_table_wins_and_leaves_no_files() {
    tokio::time::timeout(Duration::from_secs(100), drop_during_move())
        .await
        .expect("the test finishes within its time bound");
}

async fn drop_during_move() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    load(&mut c, "doomed").await;
    let move_task = distribute(&cluster.url, "doomed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.run("DROP TABLE doomed").await;
    let moved = move_task.await.expect("distribute task");
    if let Err(status) = &moved {
        assert!(
            is_retryable_conflict(status),
            "a distribution that lost the race to DROP is refused as a retryable conflict: {}",
            describe(status)
        );
    }
    c.expect_error("SELECT count(*) FROM doomed", Code::NotFound)
        .await;
    assert!(rows(&c.run("SELECT * FROM pg_dist_partition").await).is_empty());
    assert!(rows(&c.run("SELECT * FROM pg_dist_colocation").await).is_empty());
    // The dropped table's files go once the statements older than the DROP (the refused
    // distribution) have ended.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while parquet_files_under(cluster.data_dir()) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "neither the dropped rows nor the refused move's files remain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_racing_truncate_are_before_it_after_it_or_refused() {
    tokio::time::timeout(Duration::from_secs(90), inserts_and_truncates())
        .await
        .expect("the test finishes within its time bound");
}

/// One INSERT of `BATCH_ROWS` rows tagged with its batch number, as a writer saw it.
struct Batch {
    id: i64,
    started: Instant,
    ended: Instant,
    acknowledged: bool,
}

const BATCH_ROWS: i64 = 20;

async fn inserts_and_truncates() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    c.run("CREATE TABLE log (batch BIGINT NOT NULL, n BIGINT NOT NULL)")
        .await;
    c.run("SELECT create_distributed_table('log', 'n', shard_count => 4)")
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let url = cluster.url.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut client = TestClient::connect(&url).await;
                let mut batches = Vec::new();
                let mut unexpected = Vec::new();
                let mut id = w * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    id += 1;
                    let started = Instant::now();
                    let outcome = client
                        .update(&format!(
                            "INSERT INTO log SELECT {id}, value FROM generate_series(1, {BATCH_ROWS})"
                        ))
                        .await;
                    let ended = Instant::now();
                    let acknowledged = match outcome {
                        Ok(_) => true,
                        Err(status) if is_retryable_conflict(&status) => false,
                        Err(status) => {
                            unexpected.push(describe(&status));
                            false
                        }
                    };
                    batches.push(Batch {
                        id,
                        started,
                        ended,
                        acknowledged,
                    });
                }
                (batches, unexpected)
            })
        })
        .collect();
    // Several truncations while the writers run; the last one is what the check uses.
    let mut last_truncate = (Instant::now(), Instant::now());
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let started = Instant::now();
        c.run("TRUNCATE log").await;
        last_truncate = (started, Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let (truncate_start, truncate_end) = last_truncate;
    let mut logs = Vec::new();
    for writer in writers {
        logs.push(writer.await.expect("writer task"));
    }
    // Every writer has stopped: the table holds its final rows.
    let present: std::collections::HashMap<i64, i64> = rows(
        &c.run("SELECT batch, count(*) FROM log GROUP BY batch")
            .await,
    )
    .iter()
    .map(|r| {
        let (batch, count) = r.split_once(" | ").expect("two columns");
        (
            batch.parse().expect("batch number"),
            count.parse().expect("count"),
        )
    })
    .collect();
    let mut after = 0;
    for (batches, unexpected) in logs {
        assert!(
            unexpected.is_empty(),
            "INSERTs may only fail with the retryable conflict: {unexpected:?}"
        );
        for batch in batches {
            let rows = present.get(&batch.id).copied().unwrap_or(0);
            assert!(
                rows == 0 || rows == BATCH_ROWS,
                "batch {} is all or nothing, found {rows} rows",
                batch.id
            );
            if !batch.acknowledged {
                assert_eq!(rows, 0, "refused batch {} left rows", batch.id);
            } else if batch.started >= truncate_end {
                assert_eq!(
                    rows, BATCH_ROWS,
                    "batch {} acknowledged after the last TRUNCATE is kept",
                    batch.id
                );
                after += 1;
            } else if batch.ended <= truncate_start {
                assert_eq!(
                    rows, 0,
                    "batch {} acknowledged before the last TRUNCATE is gone",
                    batch.id
                );
            }
        }
    }
    assert!(after > 0, "INSERTs ran after the last TRUNCATE");
    cluster.shutdown().await;
}
