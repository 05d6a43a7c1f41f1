//! [`TaskStats`]: what one task of a stage sent and cost, filled in as it runs and shown by
//! `EXPLAIN ANALYZE` on its `DistributedExec`.
//!
//! A task whose answer the coordinator reads counts its rows, Flight bytes and time there, and
//! takes its spills from the report its answer ends with. A producer task of a shuffle sends
//! its rows to other workers, never to the coordinator: its numbers are the sums of the reports
//! its partitions ended with (each partition once, however many readers forwarded it), which
//! reach the coordinator inside its consumers' reports (see
//! `shardfusion_common::exchange::task_report`).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use shardfusion_common::wire::PartitionReport;

/// See the module docs.
#[derive(Debug, Default)]
pub struct TaskStats {
    started: AtomicBool,
    rows: AtomicU64,
    bytes: AtomicU64,
    elapsed_us: AtomicU64,
    spill_count: AtomicU64,
    spilled_bytes: AtomicU64,
    /// The producer partitions already counted.
    partitions: Mutex<HashSet<u64>>,
}

impl TaskStats {
    pub fn start(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    pub fn add_rows(&self, rows: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The task's spills as its report gives them (totals so far).
    pub fn spilled(&self, count: u64, bytes: u64) {
        self.spill_count.fetch_max(count, Ordering::Relaxed);
        self.spilled_bytes.fetch_max(bytes, Ordering::Relaxed);
    }

    /// One partition of a producer task, as it reported its end.
    pub fn add_partition(&self, report: &PartitionReport) {
        self.start();
        if self.partitions.lock().insert(report.partition) {
            self.add_rows(report.rows);
            self.add_bytes(report.bytes);
        }
        self.elapsed_us
            .fetch_max(report.elapsed_us, Ordering::Relaxed);
        self.spilled(report.spill_count, report.spilled_bytes);
    }

    fn numbers(&self) -> Option<[u64; 5]> {
        self.started.load(Ordering::Relaxed).then(|| {
            [
                &self.rows,
                &self.bytes,
                &self.elapsed_us,
                &self.spill_count,
                &self.spilled_bytes,
            ]
            .map(|n| n.load(Ordering::Relaxed))
        })
    }
}

/// ` [rows_sent=…, bytes_sent=…, elapsed=…ms, spill_count=…, spilled_bytes=…]` for a task that
/// ran; nothing for one that did not.
pub fn write_task(f: &mut fmt::Formatter<'_>, stats: &TaskStats) -> fmt::Result {
    match stats.numbers() {
        Some(n) => write_numbers(f, " [", n),
        None => Ok(()),
    }
}

/// `, stage=[…]`: the stage's totals (the longest task's time) once any of its tasks ran.
pub fn write_stage(f: &mut fmt::Formatter<'_>, tasks: &[TaskStats]) -> fmt::Result {
    let ran: Vec<[u64; 5]> = tasks.iter().filter_map(TaskStats::numbers).collect();
    if ran.is_empty() {
        return Ok(());
    }
    let mut total = [0u64; 5];
    for n in &ran {
        for (i, value) in n.iter().enumerate() {
            total[i] = if i == 2 {
                total[i].max(*value)
            } else {
                total[i] + value
            };
        }
    }
    write_numbers(f, ", stage=[", total)
}

fn write_numbers(f: &mut fmt::Formatter<'_>, open: &str, n: [u64; 5]) -> fmt::Result {
    write!(
        f,
        "{open}rows_sent={}, bytes_sent={}, elapsed={:.1}ms, spill_count={}, spilled_bytes={}]",
        n[0],
        n[1],
        n[2] as f64 / 1000.0,
        n[3],
        n[4]
    )
}

/// Adds a task's elapsed time when its stream ends or is dropped.
pub struct TaskTimer {
    pub stats: Arc<Vec<TaskStats>>,
    pub index: usize,
    pub started: Instant,
}

impl Drop for TaskTimer {
    fn drop(&mut self) {
        if let Some(task) = self.stats.get(self.index) {
            task.elapsed_us
                .fetch_add(self.started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(partition: u64, rows: u64, elapsed_us: u64, spills: u64) -> PartitionReport {
        PartitionReport {
            stage_key: "s".to_string(),
            partition,
            rows,
            bytes: rows * 10,
            elapsed_us,
            spill_count: spills,
            spilled_bytes: spills * 100,
        }
    }

    #[test]
    fn producer_partitions_count_once_and_time_is_the_latest() {
        let stats = TaskStats::default();
        assert_eq!(stats.numbers(), None);
        stats.add_partition(&report(0, 5, 100, 0));
        stats.add_partition(&report(0, 5, 300, 1));
        stats.add_partition(&report(1, 2, 200, 0));
        assert_eq!(stats.numbers(), Some([7, 70, 300, 1, 100]));
    }
}
