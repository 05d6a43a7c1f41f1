//! What each statement received from the workers, summed per normalized statement, as
//! PostgreSQL's `pg_stat_statements` does.
//!
//! Every statement gets a [`QueryCounters`]; each `DistributedExec` of its plan adds the rows
//! and Flight bytes it received. When the statement's result has been streamed (or dropped),
//! its counters are added to the entry of its [`NormalizedStatement`] in [`StatementStats`],
//! which `shardfusion_stat_statements` shows, most recently run first.
//!
//! Bounds: an entry keeps the normalized text (literals replaced by `$n`, at most
//! [`MAX_QUERY_TEXT_BYTES`]), never the statement as sent, so neither a 10 MB `INSERT` nor
//! another client's values are kept; at most [`MAX_ENTRIES`] entries are kept, and the least
//! recently run is dropped first (as `pg_stat_statements.max`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{
    Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::sql::parser::Statement as DFStatement;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use parking_lot::Mutex;

pub use crate::monitoring::normalized_statement::MAX_QUERY_TEXT_BYTES;
use crate::monitoring::normalized_statement::NormalizedStatement;
use crate::monitoring::statement_activity::{ActivityEntry, ActivityState, StatementActivity};

/// The name of the view over statement statistics.
pub const STAT_STATEMENTS: &str = "shardfusion_stat_statements";

/// How many distinct normalized statements the view keeps (`pg_stat_statements.max`).
/// With [`MAX_QUERY_TEXT_BYTES`] per text, the view holds at most about 4 MiB.
pub const MAX_ENTRIES: u64 = 1000;

/// Counters of one statement, shared by all its distributed nodes.
#[derive(Debug, Default)]
pub struct QueryCounters {
    pub tasks: AtomicU64,
    pub shards: AtomicU64,
    pub rows_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub rows_returned: AtomicU64,
    /// Microseconds spent parsing the statement's text.
    pub parse_us: AtomicU64,
    /// Microseconds from the parsed statement to its distributed plan (DML: to its result).
    pub plan_us: AtomicU64,
    /// Microseconds from starting each task to its worker's answer starting to stream (plan
    /// encoding and the call's round trip), summed over tasks.
    pub dispatch_us: AtomicU64,
    /// Microseconds the workers reported running the statement's tasks, summed over tasks.
    pub worker_us: AtomicU64,
    /// Queries planned from their shape's cached plan (`crate::session::plan_cache`).
    pub generic_plans: AtomicU64,
    /// Queries planned from their text.
    pub custom_plans: AtomicU64,
}

impl QueryCounters {
    fn get(counter: &AtomicU64) -> i64 {
        counter.load(Ordering::Relaxed) as i64
    }
}

/// The totals of every run of one normalized statement.
#[derive(Debug, Clone)]
struct Entry {
    query_id: i64,
    /// The role that ran it.
    usename: Arc<str>,
    query: String,
    calls: i64,
    /// When the most recent run started.
    started_at_ms: i64,
    total_elapsed_us: i64,
    parse_us: i64,
    plan_us: i64,
    dispatch_us: i64,
    worker_us: i64,
    tasks: i64,
    shards: i64,
    rows_received: i64,
    bytes_received: i64,
    rows_returned: i64,
    generic_plans: i64,
    custom_plans: i64,
}

/// Statistics per normalized statement, least recently run dropped past a capacity.
pub struct StatementStats {
    /// Keyed by role and `query_id`: each role has its own entries, as in PostgreSQL.
    entries: Cache<(Arc<str>, i64), Arc<Mutex<Entry>>>,
    /// The statements running now (`shardfusion_stat_activity`).
    activity: Arc<StatementActivity>,
}

impl std::fmt::Debug for StatementStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementStats")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl Default for StatementStats {
    fn default() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }
}

/// Adds a statement's run to [`StatementStats`] when dropped.
#[derive(Debug)]
pub struct StatementTracker {
    stats: Arc<StatementStats>,
    counters: Arc<QueryCounters>,
    usename: Arc<str>,
    statement: NormalizedStatement,
    started: Instant,
    started_at_ms: i64,
    /// Lists the statement in `shardfusion_stat_activity` until the tracker is dropped.
    activity: ActivityEntry,
}

impl StatementTracker {
    pub fn counters(&self) -> &Arc<QueryCounters> {
        &self.counters
    }

    pub fn set_state(&self, state: ActivityState) {
        self.activity.set_state(state);
    }
}

impl Drop for StatementTracker {
    fn drop(&mut self) {
        let c = &self.counters;
        let statement = &mut self.statement;
        let key = (Arc::clone(&self.usename), statement.id);
        let entry = self.stats.entries.get_with(key, || {
            Arc::new(Mutex::new(Entry {
                query_id: statement.id,
                usename: Arc::clone(&self.usename),
                query: std::mem::take(&mut statement.text),
                calls: 0,
                started_at_ms: 0,
                total_elapsed_us: 0,
                parse_us: 0,
                plan_us: 0,
                dispatch_us: 0,
                worker_us: 0,
                tasks: 0,
                shards: 0,
                rows_received: 0,
                bytes_received: 0,
                rows_returned: 0,
                generic_plans: 0,
                custom_plans: 0,
            }))
        });
        let mut entry = entry.lock();
        entry.calls += 1;
        entry.started_at_ms = entry.started_at_ms.max(self.started_at_ms);
        entry.total_elapsed_us += self.started.elapsed().as_micros() as i64;
        entry.parse_us += QueryCounters::get(&c.parse_us);
        entry.plan_us += QueryCounters::get(&c.plan_us);
        entry.dispatch_us += QueryCounters::get(&c.dispatch_us);
        entry.worker_us += QueryCounters::get(&c.worker_us);
        entry.tasks += QueryCounters::get(&c.tasks);
        entry.shards += QueryCounters::get(&c.shards);
        entry.rows_received += QueryCounters::get(&c.rows_received);
        entry.bytes_received += QueryCounters::get(&c.bytes_received);
        entry.rows_returned += QueryCounters::get(&c.rows_returned);
        entry.generic_plans += QueryCounters::get(&c.generic_plans);
        entry.custom_plans += QueryCounters::get(&c.custom_plans);
    }
}

impl StatementStats {
    /// Keeps at most `capacity` normalized statements.
    pub fn with_capacity(capacity: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(EvictionPolicy::lru())
                .build(),
            activity: Arc::default(),
        }
    }

    /// The statements running now.
    pub fn activity(&self) -> &Arc<StatementActivity> {
        &self.activity
    }

    /// Starts tracking `statement`, run by role `usename`, which is handed back unchanged
    /// (normalizing it borrows the rows of a large `VALUES` list instead of copying them).
    pub fn track(
        self: &Arc<Self>,
        usename: &str,
        mut statement: DFStatement,
    ) -> (DFStatement, StatementTracker) {
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let normalized = NormalizedStatement::of(&mut statement);
        let started = Instant::now();
        let usename: Arc<str> = Arc::from(usename);
        let activity = self.activity.start(
            normalized.id,
            &usename,
            &normalized.text,
            started_at_ms,
            started,
        );
        let tracker = StatementTracker {
            stats: Arc::clone(self),
            counters: Arc::default(),
            usename,
            statement: normalized,
            started,
            started_at_ms,
            activity,
        };
        (statement, tracker)
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("query_id", DataType::Int64, false),
            Field::new("usename", DataType::Utf8, false),
            Field::new("query", DataType::Utf8, false),
            Field::new("calls", DataType::Int64, false),
            Field::new(
                "started_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("total_elapsed_ms", DataType::Int64, false),
            Field::new("mean_elapsed_ms", DataType::Float64, false),
            Field::new("total_parse_time", DataType::Float64, false),
            Field::new("total_plan_time", DataType::Float64, false),
            Field::new("total_dispatch_time", DataType::Float64, false),
            Field::new("total_worker_time", DataType::Float64, false),
            Field::new("tasks", DataType::Int64, false),
            Field::new("shards", DataType::Int64, false),
            Field::new("rows_received", DataType::Int64, false),
            Field::new("bytes_received", DataType::Int64, false),
            Field::new("rows_returned", DataType::Int64, false),
            // As PostgreSQL 18's pg_stat_statements: runs planned from the shape's cached
            // plan, and runs of a query planned from its text.
            Field::new("generic_plan_calls", DataType::Int64, false),
            Field::new("custom_plan_calls", DataType::Int64, false),
        ]))
    }

    /// One row per normalized statement, most recently started first.
    pub fn batch(&self) -> datafusion::error::Result<RecordBatch> {
        let mut entries: Vec<Entry> = self
            .entries
            .iter()
            .map(|(_, entry)| entry.lock().clone())
            .filter(|entry| entry.calls > 0)
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.started_at_ms));
        let longs =
            |f: fn(&Entry) -> i64| Arc::new(Int64Array::from_iter_values(entries.iter().map(f)));
        // Microseconds, shown in milliseconds (as `pg_stat_statements` shows its times).
        let millis = |f: fn(&Entry) -> f64| {
            Arc::new(Float64Array::from_iter_values(
                entries.iter().map(|e| f(e) / 1000.0),
            ))
        };
        Ok(RecordBatch::try_new(
            Self::schema(),
            vec![
                longs(|e| e.query_id),
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|e| e.usename.as_ref()),
                )),
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|e| e.query.as_str()),
                )),
                longs(|e| e.calls),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(
                        entries.iter().map(|e| e.started_at_ms),
                    )
                    .with_timezone("UTC"),
                ),
                longs(|e| e.total_elapsed_us / 1000),
                millis(|e| e.total_elapsed_us as f64 / e.calls as f64),
                millis(|e| e.parse_us as f64),
                millis(|e| e.plan_us as f64),
                millis(|e| e.dispatch_us as f64),
                millis(|e| e.worker_us as f64),
                longs(|e| e.tasks),
                longs(|e| e.shards),
                longs(|e| e.rows_received),
                longs(|e| e.bytes_received),
                longs(|e| e.rows_returned),
                longs(|e| e.generic_plans),
                longs(|e| e.custom_plans),
            ],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn run(stats: &Arc<StatementStats>, sql: &str) {
        let statement = DFParser::parse_sql(sql)
            .expect("valid SQL")
            .pop_front()
            .expect("one statement");
        let (_, tracker) = stats.track("alice", statement);
        tracker
            .counters()
            .rows_returned
            .fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    fn runs_differing_in_literals_add_up() {
        let stats = Arc::new(StatementStats::default());
        run(&stats, "SELECT * FROM t WHERE k = 1");
        run(&stats, "SELECT * FROM t WHERE k = 2");
        run(&stats, "SELECT * FROM u");
        let batch = stats.batch().expect("batch");
        assert_eq!(batch.num_rows(), 2);
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&[batch])
            .expect("printable")
            .to_string();
        assert!(text.contains("SELECT * FROM t WHERE k = $1"), "{text}");
    }

    #[test]
    fn least_recently_run_statements_are_dropped_past_capacity() {
        let stats = Arc::new(StatementStats::with_capacity(10));
        for i in 0..100 {
            run(&stats, &format!("SELECT c{i} FROM t"));
        }
        stats.entries.run_pending_tasks();
        assert!(stats.entries.entry_count() <= 10, "{:?}", stats);
        // The newest statement is among those kept.
        let batch = stats.batch().expect("batch");
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&[batch])
            .expect("printable")
            .to_string();
        assert!(text.contains("SELECT c99 FROM t"), "{text}");
    }
}
