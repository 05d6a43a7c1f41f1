//! What each statement received from the workers, and a view of recent statements.
//!
//! Every statement gets a [`QueryCounters`]; each `DistributedExec` of its plan adds the rows
//! and Flight bytes it received. When the statement's result has been streamed (or dropped),
//! a [`StatementRecord`] is kept in [`StatementStats`], which `shardfusion_stat_statements`
//! shows, newest first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parking_lot::Mutex;

/// The name of the view over recent statements.
pub const STAT_STATEMENTS: &str = "shardfusion_stat_statements";

/// How many statements the view keeps.
pub const KEEP_STATEMENTS: usize = 1000;

/// Counters of one statement, shared by all its distributed nodes.
#[derive(Debug, Default)]
pub struct QueryCounters {
    pub tasks: AtomicU64,
    pub shards: AtomicU64,
    pub rows_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub rows_returned: AtomicU64,
}

impl QueryCounters {
    fn get(counter: &AtomicU64) -> i64 {
        counter.load(Ordering::Relaxed) as i64
    }
}

/// One finished statement.
#[derive(Debug, Clone)]
pub struct StatementRecord {
    pub query_id: String,
    pub query: String,
    pub started_at_ms: i64,
    pub elapsed_ms: i64,
    pub tasks: i64,
    pub shards: i64,
    pub rows_received: i64,
    pub bytes_received: i64,
    pub rows_returned: i64,
}

/// The most recent statements.
#[derive(Debug, Default)]
pub struct StatementStats {
    recent: Mutex<VecDeque<StatementRecord>>,
}

/// Records a statement into [`StatementStats`] when dropped.
#[derive(Debug)]
pub struct StatementTracker {
    stats: Arc<StatementStats>,
    counters: Arc<QueryCounters>,
    query_id: String,
    query: String,
    started: Instant,
    started_at_ms: i64,
}

impl StatementTracker {
    pub fn counters(&self) -> &Arc<QueryCounters> {
        &self.counters
    }
}

impl Drop for StatementTracker {
    fn drop(&mut self) {
        let c = &self.counters;
        let record = StatementRecord {
            query_id: self.query_id.clone(),
            query: std::mem::take(&mut self.query),
            started_at_ms: self.started_at_ms,
            elapsed_ms: self.started.elapsed().as_millis() as i64,
            tasks: QueryCounters::get(&c.tasks),
            shards: QueryCounters::get(&c.shards),
            rows_received: QueryCounters::get(&c.rows_received),
            bytes_received: QueryCounters::get(&c.bytes_received),
            rows_returned: QueryCounters::get(&c.rows_returned),
        };
        let mut recent = self.stats.recent.lock();
        if recent.len() == KEEP_STATEMENTS {
            recent.pop_back();
        }
        recent.push_front(record);
    }
}

impl StatementStats {
    /// Starts tracking a statement.
    pub fn track(self: &Arc<Self>, query: &str) -> StatementTracker {
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        StatementTracker {
            stats: Arc::clone(self),
            counters: Arc::default(),
            query_id: uuid::Uuid::new_v4().to_string(),
            query: query.trim().to_string(),
            started: Instant::now(),
            started_at_ms,
        }
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("query_id", DataType::Utf8, false),
            Field::new("query", DataType::Utf8, false),
            Field::new(
                "started_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("elapsed_ms", DataType::Int64, false),
            Field::new("tasks", DataType::Int64, false),
            Field::new("shards", DataType::Int64, false),
            Field::new("rows_received", DataType::Int64, false),
            Field::new("bytes_received", DataType::Int64, false),
            Field::new("rows_returned", DataType::Int64, false),
        ]))
    }

    /// The recent statements, newest first.
    pub fn batch(&self) -> datafusion::error::Result<RecordBatch> {
        let recent: Vec<StatementRecord> = self.recent.lock().iter().cloned().collect();
        let longs = |f: fn(&StatementRecord) -> i64| {
            Arc::new(Int64Array::from_iter_values(recent.iter().map(f)))
        };
        Ok(RecordBatch::try_new(
            Self::schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    recent.iter().map(|r| r.query_id.clone()),
                )),
                Arc::new(StringArray::from_iter_values(
                    recent.iter().map(|r| r.query.clone()),
                )),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(
                        recent.iter().map(|r| r.started_at_ms),
                    )
                    .with_timezone("UTC"),
                ),
                longs(|r| r.elapsed_ms),
                longs(|r| r.tasks),
                longs(|r| r.shards),
                longs(|r| r.rows_received),
                longs(|r| r.bytes_received),
                longs(|r| r.rows_returned),
            ],
        )?)
    }
}
