//! What a task reports when its answer ends, for `EXPLAIN ANALYZE`: a last Flight message with
//! no IPC header whose `app_metadata` is a [`TaskReport`].
//!
//! - A worker appends it to every `DoGet` answer ([`reported`]): the answer's rows and bytes,
//!   the task's elapsed time and spills ([`spills`]), and the reports of the shuffle
//!   partitions the task's plan read ([`ReceivedReports`], kept by each `ShuffleReadExec`).
//! - Every transport's decoder hands it to the caller's [`WireMeter`] instead of decoding it
//!   as a batch (`task_answer`).
//! - The coordinator's `DistributedExec` puts each report on the stage and task it names, so
//!   producer stages, which never run on the coordinator, show their tasks' rows, bytes, time
//!   and spills too.
//!
//! [`WireMeter`]: super::transport::WireMeter

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow_flight::FlightData;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::physical_plan::ExecutionPlan;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use prost::Message;

use super::shuffle_read::ShuffleReadExec;
use crate::wire::{PartitionReport, TaskReport};

/// The last message of an answer, carrying `report`.
pub fn report_frame(report: &TaskReport) -> FlightData {
    FlightData {
        app_metadata: report.encode_to_vec().into(),
        ..FlightData::default()
    }
}

/// The report `frame` carries, if it is a report frame (no IPC header). One that does not
/// decode (a node of another version) is logged and ignored: it carries no rows.
pub fn frame_report(frame: &FlightData) -> Option<TaskReport> {
    if !is_report_frame(frame) {
        return None;
    }
    match TaskReport::decode(frame.app_metadata.clone()) {
        Ok(report) => Some(report),
        Err(e) => {
            tracing::warn!("ignoring a task report that does not decode: {e}");
            None
        }
    }
}

/// Whether `frame` is a report frame, which carries no rows.
pub fn is_report_frame(frame: &FlightData) -> bool {
    frame.data_header.is_empty()
}

/// How often the operators of `plan` spilled to disk, and how many bytes.
pub fn spills(plan: &Arc<dyn ExecutionPlan>) -> (u64, u64) {
    let (mut count, mut bytes) = (0u64, 0u64);
    let _ = plan.apply(|node| {
        if let Some(metrics) = node.metrics() {
            count += metrics.spill_count().unwrap_or(0) as u64;
            bytes += metrics.spilled_bytes().unwrap_or(0) as u64;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (count, bytes)
}

/// The reports every `ShuffleReadExec` in `plan` received.
pub fn upstream_reports(plan: &Arc<dyn ExecutionPlan>) -> Vec<PartitionReport> {
    let merged = ReceivedReports::default();
    let _ = plan.apply(|node| {
        if let Some(read) = node.downcast_ref::<ShuffleReadExec>() {
            for report in read.received().all() {
                merged.add(report);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    merged.all()
}

/// `frames` (a task's encoded answer) followed by its report: rows counted by `rows`, bytes
/// of the frames, the time since `started`, and the spills and upstream reports of `plan`
/// once the answer is complete.
pub fn reported<S, E>(
    frames: S,
    rows: Arc<AtomicU64>,
    plan: Arc<dyn ExecutionPlan>,
    stage_key: String,
    partition: u64,
    started: Instant,
) -> impl Stream<Item = Result<FlightData, E>> + Send + 'static
where
    S: Stream<Item = Result<FlightData, E>> + Send + 'static,
    E: Send + 'static,
{
    let bytes = Arc::new(AtomicU64::new(0));
    let counted = {
        let bytes = Arc::clone(&bytes);
        frames.map(move |frame| {
            if let Ok(frame) = &frame {
                bytes.fetch_add(
                    (frame.data_header.len() + frame.data_body.len()) as u64,
                    Ordering::Relaxed,
                );
            }
            frame
        })
    };
    let last = futures::stream::once(async move {
        let (spill_count, spilled_bytes) = spills(&plan);
        let report = TaskReport {
            own: Some(PartitionReport {
                stage_key,
                partition,
                rows: rows.load(Ordering::Relaxed),
                bytes: bytes.load(Ordering::Relaxed),
                elapsed_us: started.elapsed().as_micros() as u64,
                spill_count,
                spilled_bytes,
            }),
            upstream: upstream_reports(&plan),
        };
        Ok(report_frame(&report))
    });
    counted.chain(last)
}

/// The partition reports a node received, each partition of each producer task once (the
/// latest, for its time and spills).
#[derive(Debug, Default, Clone)]
pub struct ReceivedReports(Arc<Mutex<HashMap<(String, u64), PartitionReport>>>);

impl ReceivedReports {
    /// Keeps `report`; for a partition already kept, only its later time and spills (its
    /// rows and bytes are the same in every copy).
    pub fn add(&self, report: PartitionReport) {
        let key = (report.stage_key.clone(), report.partition);
        let mut reports = self.0.lock();
        match reports.get_mut(&key) {
            Some(known) => {
                known.elapsed_us = known.elapsed_us.max(report.elapsed_us);
                known.spill_count = known.spill_count.max(report.spill_count);
                known.spilled_bytes = known.spilled_bytes.max(report.spilled_bytes);
            }
            None => {
                reports.insert(key, report);
            }
        }
    }

    /// Keeps a task's report: its own partition and what it read.
    pub fn add_task(&self, report: TaskReport) {
        for partition in report.own.into_iter().chain(report.upstream) {
            self.add(partition);
        }
    }

    /// Every partition kept.
    pub fn all(&self) -> Vec<PartitionReport> {
        self.0.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(stage: &str, partition: u64, rows: u64, elapsed_us: u64) -> PartitionReport {
        PartitionReport {
            stage_key: stage.to_string(),
            partition,
            rows,
            bytes: rows * 8,
            elapsed_us,
            spill_count: 0,
            spilled_bytes: 0,
        }
    }

    #[test]
    fn a_partition_forwarded_twice_is_kept_once_with_its_latest_time() {
        let received = ReceivedReports::default();
        received.add(partition("a", 0, 10, 5));
        received.add(partition("a", 0, 10, 9));
        received.add(partition("a", 1, 7, 3));
        received.add(partition("b", 0, 4, 1));
        let mut all = received.all();
        all.sort_by(|x, y| (&x.stage_key, x.partition).cmp(&(&y.stage_key, y.partition)));
        let kept: Vec<(&str, u64, u64, u64)> = all
            .iter()
            .map(|p| (p.stage_key.as_str(), p.partition, p.rows, p.elapsed_us))
            .collect();
        assert_eq!(kept, [("a", 0, 10, 9), ("a", 1, 7, 3), ("b", 0, 4, 1)]);
    }

    #[test]
    fn report_frames_round_trip_and_carry_no_rows() {
        let report = TaskReport {
            own: Some(partition("a", 2, 3, 4)),
            upstream: vec![partition("b", 0, 1, 1)],
        };
        let frame = report_frame(&report);
        assert!(is_report_frame(&frame));
        assert_eq!(frame_report(&frame), Some(report));
        let batch = FlightData {
            data_header: vec![1u8].into(),
            ..FlightData::default()
        };
        assert_eq!(frame_report(&batch), None);
    }
}
