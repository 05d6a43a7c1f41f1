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

/// The report `frame` carries, if it is a report frame (no IPC header).
pub fn frame_report(frame: &FlightData) -> Option<TaskReport> {
    if !frame.data_header.is_empty() || frame.app_metadata.is_empty() {
        return None;
    }
    TaskReport::decode(frame.app_metadata.clone()).ok()
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
    /// Keeps `report`, replacing an earlier one of the same partition.
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

    pub fn all(&self) -> Vec<PartitionReport> {
        self.0.lock().values().cloned().collect()
    }
}
