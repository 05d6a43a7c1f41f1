//! Statements running now, and the `shardfusion_stat_activity` view over them (as PostgreSQL's
//! `pg_stat_activity` lists active backends).
//!
//! A statement is listed from the moment the coordinator starts it until its
//! [`crate::monitoring::statement_stats::StatementTracker`] is dropped: its result streamed to the end,
//! dropped, or cancelled by its client. It then moves to `shardfusion_stat_statements`. The
//! listed text is the one `shardfusion_stat_statements` keeps for the statement.
//!
//! `state` is `planned` while a query's plan waits for its client to fetch the result (Flight
//! SQL plans in `GetFlightInfo` and runs in `DoGet`), then `running` while it executes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parking_lot::Mutex;

/// The name of the view over running statements.
pub const STAT_ACTIVITY: &str = "shardfusion_stat_activity";

#[derive(Debug)]
struct Running {
    /// The statement's `query_id` in `shardfusion_stat_statements`.
    query_id: i64,
    /// The role that runs it.
    usename: Arc<str>,
    query: String,
    state: ActivityState,
    started_at_ms: i64,
    started: Instant,
}

/// Where a listed statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityState {
    /// Planned; its result waits to be fetched.
    Planned,
    /// Executing (statements with side effects run right away).
    Running,
    /// A transaction between its statements (listed from its first statement to its end).
    IdleInTransaction,
}

impl ActivityState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Running => "running",
            Self::IdleInTransaction => "idle in transaction",
        }
    }
}

/// The statements running now, in the order they started.
#[derive(Debug, Default)]
pub struct StatementActivity {
    running: Mutex<BTreeMap<u64, Running>>,
    next_key: AtomicU64,
}

/// A statement's entry in [`StatementActivity`]; dropping it removes the entry.
#[derive(Debug)]
pub struct ActivityEntry {
    activity: Arc<StatementActivity>,
    key: u64,
}

impl ActivityEntry {
    pub fn set_state(&self, state: ActivityState) {
        if let Some(running) = self.activity.running.lock().get_mut(&self.key) {
            running.state = state;
        }
    }
}

impl Drop for ActivityEntry {
    fn drop(&mut self) {
        self.activity.running.lock().remove(&self.key);
    }
}

impl StatementActivity {
    /// Whether a statement that started before `instant` is still listed.
    pub fn started_before(&self, instant: Instant) -> bool {
        self.running.lock().values().any(|r| r.started < instant)
    }

    /// Lists a statement as running until the returned entry is dropped.
    pub fn start(
        self: &Arc<Self>,
        query_id: i64,
        usename: &Arc<str>,
        query: &str,
        started_at_ms: i64,
        started: Instant,
    ) -> ActivityEntry {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.running.lock().insert(
            key,
            Running {
                query_id,
                usename: Arc::clone(usename),
                query: query.to_string(),
                state: ActivityState::Running,
                started_at_ms,
                started,
            },
        );
        ActivityEntry {
            activity: Arc::clone(self),
            key,
        }
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("query_id", DataType::Int64, false),
            Field::new("usename", DataType::Utf8, false),
            Field::new("query", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new(
                "started_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("elapsed_ms", DataType::Int64, false),
        ]))
    }

    /// The running statements, oldest first, with their time so far.
    pub fn batch(&self) -> datafusion::error::Result<RecordBatch> {
        let running = self.running.lock();
        let rows: Vec<&Running> = running.values().collect();
        Ok(RecordBatch::try_new(
            Self::schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.query_id),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.usename.as_ref()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.query.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.state.as_str()),
                )),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(
                        rows.iter().map(|r| r.started_at_ms),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.started.elapsed().as_millis() as i64),
                )),
            ],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_listed_until_its_entry_is_dropped() {
        let activity = Arc::new(StatementActivity::default());
        let user: Arc<str> = Arc::from("alice");
        let first = activity.start(1, &user, "SELECT 1", 0, Instant::now());
        let second = activity.start(2, &user, "SELECT 2", 0, Instant::now());
        second.set_state(ActivityState::Planned);
        let listed = |activity: &StatementActivity| -> Vec<(String, String)> {
            let batch = activity.batch().expect("batch");
            let text = |i: usize| {
                let column = batch.column(i).as_any().downcast_ref::<StringArray>();
                let column = column.expect("a text column").clone();
                column
                    .iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            text(2).into_iter().zip(text(3)).collect()
        };
        let row = |q: &str, s: &str| (q.to_string(), s.to_string());
        assert_eq!(
            listed(&activity),
            [row("SELECT 1", "running"), row("SELECT 2", "planned")]
        );
        drop(first);
        second.set_state(ActivityState::Running);
        assert_eq!(listed(&activity), [row("SELECT 2", "running")]);
        drop(second);
        assert!(listed(&activity).is_empty());
    }
}
