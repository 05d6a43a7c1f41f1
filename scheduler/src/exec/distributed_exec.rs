//! [`DistributedExec`]: the coordinator's side of a plan fragment that runs on the workers.
//!
//! It holds the fragment (a plan whose leaf is a `ShardScanExec` over all shards involved) and
//! one task per worker. Output partition `i` is worker task `i`: the fragment is restricted to
//! that worker's shards, encoded with datafusion-proto, sent as a Flight `DoGet` ticket, and the
//! returned batches are streamed on. Nothing is sent before the partition is polled.
//!
//! A fragment may join with small inputs computed on the coordinator (broadcast joins): they
//! are this node's further children, run once before the first task starts, and their rows
//! replace the fragment's `BroadcastExec` placeholders. The rows are held in memory and sent
//! to every task, so their size is capped ([`MAX_BROADCAST_BYTES`]).
//!
//! The fragment is shown as this node's first child so that `EXPLAIN` prints it, but it is
//! never executed on the coordinator. What is sent may differ from it in one way: hash
//! exchanges that shards make unnecessary are dropped (`planner::partition_wise`). The shown
//! fragment keeps them, because DataFusion checks every plan it holds for the partitioning
//! its joins require; the node's line says how many exchanges run shard by shard instead.

use std::fmt;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arrow_flight::Ticket;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err, resources_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execute_stream;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::{EmptyRecordBatchStream, RecordBatchStreamAdapter};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use shardfusion_common::broadcast::BroadcastExec;
use shardfusion_common::codec::encode_plan;
use shardfusion_common::ids::{NodeId, ShardId};
use shardfusion_common::shard_scan::{ShardFiles, ShardScanExec};
use shardfusion_common::status::from_status;
use shardfusion_common::wire::TaskTicket;

use tokio::sync::OnceCell;

use crate::cluster::worker_pool::{WorkerPool, worker_status};
use crate::monitoring::statement_stats::QueryCounters;

/// The part of a fragment one worker runs.
#[derive(Debug, Clone)]
pub struct WorkerTask {
    pub node_id: NodeId,
    /// The worker's Flight endpoint.
    pub url: String,
    /// `host:port`, for messages.
    pub label: String,
    /// Positions in the shard lists of the fragment's scans. Every scan of a fragment lists
    /// the same shard indexes in the same order, so one position names one shard group.
    pub positions: Vec<usize>,
    /// The shards of the first scan at those positions, for display.
    pub shard_ids: Vec<ShardId>,
}

/// The most rows (in Arrow memory) one broadcast input may hold; they travel inside every
/// task's ticket, whose size the workers bound.
pub const MAX_BROADCAST_BYTES: usize = 128 * 1024 * 1024;

/// The rows of every broadcast input, by position.
type BroadcastRows = Vec<Arc<Vec<RecordBatch>>>;

/// Runs a fragment on the workers and streams the results back; one partition per worker.
#[derive(Debug)]
pub struct DistributedExec {
    fragment: Arc<dyn ExecutionPlan>,
    /// The fragment as sent to the workers.
    shipped: Arc<dyn ExecutionPlan>,
    /// Coordinator-side inputs whose rows fill the fragment's `BroadcastExec` placeholders.
    broadcasts: Vec<Arc<dyn ExecutionPlan>>,
    /// Their rows, computed once for all tasks.
    broadcast_rows: Arc<OnceCell<BroadcastRows>>,
    tasks: Vec<WorkerTask>,
    workers: Arc<WorkerPool>,
    counters: Arc<QueryCounters>,
    /// What each task sent back, shown by `EXPLAIN ANALYZE`.
    task_stats: Arc<Vec<TaskStats>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// Rows, Flight bytes and time of one task, filled in as it runs.
#[derive(Debug, Default)]
pub struct TaskStats {
    started: AtomicBool,
    rows: AtomicU64,
    bytes: AtomicU64,
    elapsed_us: AtomicU64,
}

/// Adds a task's elapsed time when its stream ends or is dropped.
struct TaskTimer {
    stats: Arc<Vec<TaskStats>>,
    index: usize,
    started: Instant,
}

impl Drop for TaskTimer {
    fn drop(&mut self) {
        if let Some(task) = self.stats.get(self.index) {
            task.elapsed_us
                .fetch_add(self.started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    }
}

impl DistributedExec {
    pub fn new(
        fragment: Arc<dyn ExecutionPlan>,
        broadcasts: Vec<Arc<dyn ExecutionPlan>>,
        tasks: Vec<WorkerTask>,
        workers: Arc<WorkerPool>,
        counters: Arc<QueryCounters>,
    ) -> Self {
        let properties = PlanProperties::new(
            fragment.equivalence_properties().clone(),
            Partitioning::UnknownPartitioning(tasks.len().max(1)),
            fragment.pipeline_behavior(),
            fragment.boundedness(),
        );
        let task_stats = Arc::new(tasks.iter().map(|_| TaskStats::default()).collect());
        Self {
            shipped: Arc::clone(&fragment),
            fragment,
            broadcasts,
            broadcast_rows: Arc::new(OnceCell::new()),
            tasks,
            workers,
            counters,
            task_stats,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DistributedExec {
    /// Sends `shipped` to the workers instead of the shown fragment; it must compute the same
    /// rows.
    pub fn shipping(mut self, shipped: Arc<dyn ExecutionPlan>) -> Self {
        self.shipped = shipped;
        self
    }

    /// How many exchanges of the shown fragment the shipped one does without.
    fn dropped_exchanges(&self) -> usize {
        count_exchanges(&self.fragment).saturating_sub(count_exchanges(&self.shipped))
    }
}

fn count_exchanges(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut count = 0;
    let _ = plan.apply(|node| {
        if node.name() == "RepartitionExec" {
            count += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    count
}

/// The fragment with every scan narrowed to the shard groups at `positions`, every reference
/// table read from `node`'s own copy, and every broadcast placeholder filled with its rows.
fn fragment_for(
    fragment: &Arc<dyn ExecutionPlan>,
    node: NodeId,
    positions: &[usize],
    broadcast_rows: &BroadcastRows,
) -> Result<Arc<dyn ExecutionPlan>> {
    Arc::clone(fragment)
        .transform_up(|plan| {
            if let Some(broadcast) = plan.downcast_ref::<BroadcastExec>() {
                let Some(rows) = broadcast_rows.get(broadcast.input()) else {
                    return internal_err!("no rows for broadcast input {}", broadcast.input());
                };
                let filled: Arc<dyn ExecutionPlan> =
                    Arc::new(broadcast.with_batches(Arc::clone(rows)));
                return Ok(Transformed::yes(filled));
            }
            let Some(scan) = plan.downcast_ref::<ShardScanExec>() else {
                return Ok(Transformed::no(plan));
            };
            if !scan.replicas().is_empty() {
                let local = scan.replica_on(node)?.ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal(format!(
                        "node {node} holds no copy of reference table {}",
                        scan.table_name()
                    ))
                })?;
                return Ok(Transformed::yes(Arc::new(local) as Arc<dyn ExecutionPlan>));
            }
            let shards: Vec<ShardFiles> = positions
                .iter()
                .filter_map(|p| scan.shards().get(*p).cloned())
                .collect();
            let narrowed: Arc<dyn ExecutionPlan> = Arc::new(scan.with_shards(shards)?);
            Ok(Transformed::yes(narrowed))
        })
        .map(|t| t.data)
}

/// Runs every broadcast input on the coordinator and keeps its rows, refusing an input larger
/// than [`MAX_BROADCAST_BYTES`].
async fn collect_broadcasts(
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    context: Arc<TaskContext>,
) -> Result<BroadcastRows> {
    let mut all = Vec::with_capacity(inputs.len());
    for input in inputs {
        let mut stream = execute_stream(input, Arc::clone(&context))?;
        let (mut batches, mut bytes) = (Vec::new(), 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            for column in batch.columns() {
                bytes += column.to_data().get_slice_memory_size()?;
            }
            if bytes > MAX_BROADCAST_BYTES {
                return resources_err!(
                    "the small side of a join grew past {} MiB while being broadcast to the \
                     workers; filter it further or distribute both tables on the join key",
                    MAX_BROADCAST_BYTES / (1024 * 1024)
                );
            }
            batches.push(batch);
        }
        all.push(Arc::new(batches));
    }
    Ok(all)
}

impl DisplayAs for DistributedExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "DistributedExec: tasks=[")?;
                for (i, task) in self.tasks.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    let ids: Vec<String> = task.shard_ids.iter().map(|s| s.to_string()).collect();
                    write!(
                        f,
                        "node {} ({}) shards {}",
                        task.node_id,
                        task.label,
                        ids.join(",")
                    )?;
                    if let Some(stats) = self.task_stats.get(i)
                        && stats.started.load(Ordering::Relaxed)
                    {
                        write!(
                            f,
                            " [rows_sent={}, bytes_sent={}, elapsed={:.1}ms]",
                            stats.rows.load(Ordering::Relaxed),
                            stats.bytes.load(Ordering::Relaxed),
                            stats.elapsed_us.load(Ordering::Relaxed) as f64 / 1000.0
                        )?;
                    }
                }
                write!(f, "]")?;
                if !self.broadcasts.is_empty() {
                    write!(f, ", broadcast inputs={}", self.broadcasts.len())?;
                }
                let dropped = self.dropped_exchanges();
                if dropped > 0 {
                    write!(f, ", shard-wise (hash exchanges skipped)={dropped}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => write!(f, "tasks={}", self.tasks.len()),
        }
    }
}

impl ExecutionPlan for DistributedExec {
    fn name(&self) -> &str {
        "DistributedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        std::iter::once(&self.fragment)
            .chain(&self.broadcasts)
            .collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut children = children.into_iter();
        let Some(fragment) = children.next() else {
            return internal_err!("DistributedExec needs its fragment");
        };
        let broadcasts: Vec<_> = children.collect();
        if broadcasts.len() != self.broadcasts.len() {
            return internal_err!("DistributedExec got a different number of broadcast inputs");
        }
        let shipped = if Arc::ptr_eq(&fragment, &self.fragment) {
            Arc::clone(&self.shipped)
        } else {
            Arc::clone(&fragment)
        };
        Ok(Arc::new(
            Self::new(
                fragment,
                broadcasts,
                self.tasks.clone(),
                Arc::clone(&self.workers),
                Arc::clone(&self.counters),
            )
            .shipping(shipped),
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.schema();
        let Some(task) = self.tasks.get(partition) else {
            if partition == 0 && self.tasks.is_empty() {
                return Ok(Box::pin(EmptyRecordBatchStream::new(schema)));
            }
            return internal_err!("DistributedExec has no partition {partition}");
        };
        let (workers, url) = (Arc::clone(&self.workers), task.url.clone());
        let fragment = Arc::clone(&self.shipped);
        let broadcasts = self.broadcasts.clone();
        let broadcast_rows = Arc::clone(&self.broadcast_rows);
        let (node_id, positions) = (task.node_id, task.positions.clone());
        self.counters.tasks.fetch_add(1, Ordering::Relaxed);
        self.counters
            .shards
            .fetch_add(task.positions.len() as u64, Ordering::Relaxed);
        let rows_metric = MetricBuilder::new(&self.metrics).counter("rows_received", partition);
        let bytes_metric = MetricBuilder::new(&self.metrics).counter("bytes_received", partition);
        let label = task.label.clone();
        let to_status = move |status: tonic::Status| worker_status(&label, status);
        let counters = Arc::clone(&self.counters);
        let task_stats = Arc::clone(&self.task_stats);
        if let Some(stats) = task_stats.get(partition) {
            stats.started.store(true, Ordering::Relaxed);
        }
        let timer = TaskTimer {
            stats: Arc::clone(&task_stats),
            index: partition,
            started: Instant::now(),
        };
        let out_schema = Arc::clone(&schema);
        let stream = futures::stream::once(async move {
            let rows = broadcast_rows
                .get_or_try_init(|| collect_broadcasts(broadcasts, Arc::clone(&context)))
                .await?;
            let ticket = TaskTicket {
                query_id: context.session_id(),
                plan: encode_plan(fragment_for(&fragment, node_id, &positions, rows)?)?,
            };
            let response = workers
                .do_get(&url, Ticket::new(ticket.encode_to_vec()))
                .await
                .map_err(|s| from_status(to_status.clone()(s)))?;
            let wire_bytes = Arc::clone(&counters);
            let wire_task = Arc::clone(&task_stats);
            let frames = response.into_inner().map(move |frame| {
                let frame = frame.map_err(|s| FlightError::Tonic(Box::new(to_status(s))))?;
                let size = (frame.data_header.len() + frame.data_body.len()) as u64;
                wire_bytes.bytes_received.fetch_add(size, Ordering::Relaxed);
                bytes_metric.add(size as usize);
                if let Some(stats) = wire_task.get(partition) {
                    stats.bytes.fetch_add(size, Ordering::Relaxed);
                }
                Ok(frame)
            });
            let batches = FlightRecordBatchStream::new_from_flight_data(frames);
            Ok::<_, datafusion::error::DataFusionError>(batches.map(move |batch| {
                let _timer = &timer;
                let batch = batch.map_err(|e| match e {
                    FlightError::Tonic(status) => from_status(*status),
                    other => from_status(tonic::Status::internal(other.to_string())),
                })?;
                let rows = batch.num_rows();
                rows_metric.add(rows);
                counters
                    .rows_received
                    .fetch_add(rows as u64, Ordering::Relaxed);
                if let Some(stats) = task_stats.get(partition) {
                    stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
                }
                let options = RecordBatchOptions::new().with_row_count(Some(rows));
                Ok(RecordBatch::try_new_with_options(
                    Arc::clone(&out_schema),
                    batch.columns().to_vec(),
                    &options,
                )?)
            }))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
