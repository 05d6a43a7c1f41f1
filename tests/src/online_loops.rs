//! A query loop and an insert loop that run against a cluster while it changes shape (a
//! re-shard, a tenant isolation): every answer must be the expected one, and every insert the
//! cluster acknowledged is recorded, so that the test can check each is present exactly once.
//! An insert refused with the retryable conflict (`Aborted`, SQLSTATE 40001) had no effect; a
//! client would retry it, the loop just goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::RecordBatch;
use tonic::Code;

use crate::TestClient;
use crate::compare::rows;

/// What the loops saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub queries: usize,
    /// Wrong answers and errors, as messages.
    pub failures: Vec<String>,
    /// The keys of every acknowledged inserted row.
    pub acknowledged: Vec<i64>,
}

impl Seen {
    /// Fails the test with the first failures, if any.
    pub fn assert_no_failures(&self) {
        assert!(
            self.failures.is_empty(),
            "{:?}",
            &self.failures[..self.failures.len().min(5)]
        );
        assert!(self.queries > 0, "the query loop never ran");
    }
}

/// An `INSERT` statement for the rows keyed `from..from + 20`, and those keys.
pub type InsertFor = fn(i64) -> (String, Vec<i64>);

/// The two loops, running until [`OnlineLoops::stop`].
pub struct OnlineLoops {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Seen>,
}

/// How many rows each insert of the loop writes.
pub const ROWS_PER_INSERT: i64 = 20;

impl OnlineLoops {
    /// Starts the loops on `url`: each round runs every `(query, expected answer)` of `checks`
    /// (answers as [`rows`] joined by newlines) and one insert, `insert(next key)`.
    pub fn start(url: &str, checks: Vec<(String, String)>, insert: InsertFor, first: i64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = url.to_string();
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let answer = |batches: &[RecordBatch]| rows(batches).join("\n");
            let mut queries = TestClient::connect(&url).await;
            let mut inserts = TestClient::connect(&url).await;
            let mut seen = Seen::default();
            let mut next = first;
            while !stopped.load(Ordering::Acquire) {
                for (sql, expected) in &checks {
                    seen.queries += 1;
                    match queries.query(sql).await {
                        Ok(batches) if answer(&batches) == *expected => {}
                        Ok(batches) => seen.failures.push(format!(
                            "{sql} returned {}, not {expected}",
                            answer(&batches)
                        )),
                        Err(s) => seen.failures.push(format!("query failed: {}", s.message())),
                    }
                }
                let (sql, keys) = insert(next);
                next += ROWS_PER_INSERT;
                match inserts.query(&sql).await {
                    Ok(_) => seen.acknowledged.extend(keys),
                    Err(s) if s.code() == Code::Aborted => {}
                    Err(s) => seen
                        .failures
                        .push(format!("insert failed: {}", s.message())),
                }
            }
            seen
        });
        Self { stop, task }
    }

    /// Stops the loops after their current round; what they saw.
    pub async fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("the loops do not panic")
    }
}
