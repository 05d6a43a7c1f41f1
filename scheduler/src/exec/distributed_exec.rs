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
//! A fragment may also read worker-to-worker shuffles (`ShuffleReadExec` placeholders): each
//! shuffle input is a further child, itself a `DistributedExec` (the producer stage, ending in
//! a hash repartition into this node's tasks × `partitions_per_task` partitions). It never runs
//! on the coordinator: when this node first runs, every producer task's plan is built and
//! encoded, and each of this node's tasks is sent with the producers' workers, plans and the
//! partitions it owns; the consumer tasks then read their partitions straight from the
//! producers' workers.
//!
//! Every task's answer ends with a report (rows, bytes, time, spills, and those of the
//! shuffle partitions its plan read, down any chain): the task's own numbers go on its
//! [`TaskStats`], a producer partition's on the producer stage's task its stage key names
//! (`record_upstream`), so `EXPLAIN ANALYZE` shows producer stages too.
//!
//! The fragment is this node's first child, so `EXPLAIN` prints exactly what the workers run,
//! except that `ShardPartitionedExec` markers (where shards make a hash exchange unnecessary)
//! are stripped before sending; the fragment never runs on the coordinator.

use std::fmt;
use std::sync::Arc;

use std::sync::atomic::Ordering;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
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
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use prost::Message;
use shardfusion_common::broadcast::BroadcastExec;
use shardfusion_common::codec::encode_plan;
use shardfusion_common::exchange::shuffle_cancel::cancel_producers;
use shardfusion_common::exchange::shuffle_read::{
    ShuffleKind, ShuffleProducer, ShuffleReadExec, ShuffleSource,
};
use shardfusion_common::exchange::transport::{Transport, WireMeter};
use shardfusion_common::ids::{NodeId, ShardId};
use shardfusion_common::query_limits::{QueryMemoryLimit, query_id_of};
use shardfusion_common::shard_scan::{ShardFiles, ShardScanExec};
use shardfusion_common::status::from_status;
use shardfusion_common::wire::{PartitionReport, TaskReport, TaskTicket};

use tokio::sync::OnceCell;

use super::shard_partitioned::ShardPartitionedExec;
use super::task_stats::{TaskStats, TaskTimer, write_stage, write_task};
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
    /// The shard index (within its table) at each of those positions: the partitions a
    /// shard-aligned shuffle sends this task.
    pub shard_indexes: Vec<usize>,
}

/// The most rows (in Arrow memory) one broadcast input may hold; they travel inside every
/// task's ticket, whose size the workers bound.
pub const MAX_BROADCAST_BYTES: usize = 128 * 1024 * 1024;

/// The rows of every broadcast input, by position.
type BroadcastRows = Vec<Arc<Vec<RecordBatch>>>;

/// The producer tasks of every shuffle input, by position. They are cancelled on their workers
/// when this is dropped, with the last clone of its `DistributedExec`: the statement is over,
/// and a task some consumer never finished reading must not keep running (see
/// `shardfusion_common::exchange::shuffle_cancel`).
#[derive(Debug)]
struct ShuffleProducers {
    inputs: Vec<Vec<ShuffleProducer>>,
    transport: Arc<dyn Transport>,
}

impl Drop for ShuffleProducers {
    fn drop(&mut self) {
        let producers = std::mem::take(&mut self.inputs).into_iter().flatten();
        cancel_producers(Arc::clone(&self.transport), producers, None);
    }
}

/// Runs a fragment on the workers and streams the results back; one partition per worker.
/// Clones share their broadcast rows, shuffle producers and statistics.
#[derive(Debug, Clone)]
pub struct DistributedExec {
    fragment: Arc<dyn ExecutionPlan>,
    /// Coordinator-side inputs whose rows fill the fragment's `BroadcastExec` placeholders.
    broadcasts: Vec<Arc<dyn ExecutionPlan>>,
    /// Their rows, computed once for all tasks.
    broadcast_rows: Arc<OnceCell<BroadcastRows>>,
    /// Producer stages (`DistributedExec`s) of the fragment's `ShuffleReadExec` placeholders.
    shuffles: Vec<Arc<dyn ExecutionPlan>>,
    /// Their tasks, started once for all of this node's tasks.
    shuffle_producers: Arc<OnceCell<ShuffleProducers>>,
    /// Shuffle partitions each task owns.
    partitions_per_task: usize,
    tasks: Vec<WorkerTask>,
    /// Resolves each task's worker identity.
    workers: Arc<WorkerPool>,
    /// Carries the tasks to the workers.
    transport: Arc<dyn Transport>,
    counters: Arc<QueryCounters>,
    /// What each task sent back, shown by `EXPLAIN ANALYZE`.
    task_stats: Arc<Vec<TaskStats>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DistributedExec {
    pub fn new(
        fragment: Arc<dyn ExecutionPlan>,
        broadcasts: Vec<Arc<dyn ExecutionPlan>>,
        tasks: Vec<WorkerTask>,
        workers: Arc<WorkerPool>,
        transport: Arc<dyn Transport>,
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
            fragment,
            broadcasts,
            broadcast_rows: Arc::new(OnceCell::new()),
            shuffles: Vec::new(),
            shuffle_producers: Arc::new(OnceCell::new()),
            partitions_per_task: 1,
            tasks,
            workers,
            transport,
            counters,
            task_stats,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DistributedExec {
    /// Reads `shuffles` (producer `DistributedExec`s, by the fragment's `ShuffleReadExec`
    /// input numbers), each task owning `partitions_per_task` of their partitions.
    pub fn reading_shuffles(
        mut self,
        shuffles: Vec<Arc<dyn ExecutionPlan>>,
        partitions_per_task: usize,
    ) -> Self {
        self.shuffles = shuffles;
        self.partitions_per_task = partitions_per_task.max(1);
        self
    }

    /// The worker tasks, one per output partition.
    pub fn tasks(&self) -> &[WorkerTask] {
        &self.tasks
    }

    /// The plan task `index` runs: the shipped fragment narrowed to its shards, with broadcast
    /// rows and shuffle producers filled in (computing them on first use).
    fn task_plan<'a>(
        &'a self,
        index: usize,
        context: &'a Arc<TaskContext>,
    ) -> BoxFuture<'a, Result<Arc<dyn ExecutionPlan>>> {
        async move {
            let Some(task) = self.tasks.get(index) else {
                return internal_err!("DistributedExec has no task {index}");
            };
            let rows = self
                .broadcast_rows
                .get_or_try_init(|| {
                    collect_broadcasts(self.broadcasts.clone(), Arc::clone(context))
                })
                .await?;
            let producers = self
                .shuffle_producers
                .get_or_try_init(|| self.start_shuffles(context))
                .await?;
            let filled = fill_shuffles(
                &self.fragment,
                producers,
                &self.tasks,
                index,
                self.partitions_per_task,
            )?;
            fragment_for(&filled, task.node_id, &task.positions, rows)
        }
        .boxed()
    }

    /// Builds every producer task of every shuffle input: its plan, its worker, and a stage key
    /// naming this run of it.
    async fn start_shuffles(&self, context: &Arc<TaskContext>) -> Result<ShuffleProducers> {
        let run = uuid::Uuid::new_v4();
        let mut all = Vec::with_capacity(self.shuffles.len());
        for (input, stage) in self.shuffles.iter().enumerate() {
            let Some(stage) = stage.downcast_ref::<DistributedExec>() else {
                return internal_err!("shuffle input {input} is not a DistributedExec");
            };
            let mut producers = Vec::with_capacity(stage.tasks.len());
            for (index, task) in stage.tasks.iter().enumerate() {
                let plan = stage.task_plan(index, context).await?;
                let target = self
                    .workers
                    .target(&task.url, &task.label)
                    .await
                    .map_err(from_status)?;
                producers.push(ShuffleProducer {
                    target,
                    plan: Arc::new(encode_plan(plan)?),
                    stage_key: format!("{}/{run}/{input}/{index}", context.session_id()),
                });
            }
            all.push(producers);
        }
        Ok(ShuffleProducers {
            inputs: all,
            transport: Arc::clone(&self.transport),
        })
    }

    /// Puts the report of a producer partition on the task of this node's shuffle inputs (or
    /// theirs, down the chain) it names; whether one was found.
    fn record_upstream(&self, report: &PartitionReport) -> bool {
        let stages = || {
            self.shuffles
                .iter()
                .filter_map(|s| s.downcast_ref::<DistributedExec>())
        };
        if let Some(producers) = self.shuffle_producers.get() {
            for (stage, tasks) in stages().zip(&producers.inputs) {
                if let Some(index) = tasks.iter().position(|t| t.stage_key == report.stage_key) {
                    if let Some(stats) = stage.task_stats.get(index) {
                        stats.add_partition(report);
                    }
                    return true;
                }
            }
        }
        stages().any(|stage| stage.record_upstream(report))
    }

    /// How many hash exchanges of the fragment run shard by shard instead.
    fn shard_wise_exchanges(&self) -> usize {
        let mut count = 0;
        let _ = self.fragment.apply(|node| {
            if node.downcast_ref::<ShardPartitionedExec>().is_some() {
                count += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        });
        count
    }
}

/// The fragment with every shuffle placeholder reading from its producers: for a hash
/// shuffle, consumer task `index`'s `per_task` partitions; for a shard-aligned one, the shards
/// of `task`'s positions.
fn fill_shuffles(
    fragment: &Arc<dyn ExecutionPlan>,
    producers: &ShuffleProducers,
    tasks: &[WorkerTask],
    index: usize,
    per_task: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    if producers.inputs.is_empty() {
        return Ok(Arc::clone(fragment));
    }
    let Some(task) = tasks.get(index) else {
        return internal_err!("DistributedExec has no task {index}");
    };
    Arc::clone(fragment)
        .transform_up(|plan| {
            let Some(read) = plan.downcast_ref::<ShuffleReadExec>() else {
                return Ok(Transformed::no(plan));
            };
            let Some(producer_tasks) = producers.inputs.get(read.input()) else {
                return internal_err!("no producers for shuffle input {}", read.input());
            };
            let (partitions, readers) = match read.kind() {
                ShuffleKind::Hash => (
                    (index * per_task..(index + 1) * per_task).collect(),
                    tasks.len() * per_task,
                ),
                ShuffleKind::ShardAligned { .. } => (
                    task.shard_indexes.clone(),
                    tasks.iter().map(|t| t.shard_indexes.len()).sum(),
                ),
            };
            let filled: Arc<dyn ExecutionPlan> = Arc::new(read.with_source(ShuffleSource {
                producers: producer_tasks.clone(),
                partitions,
                readers,
            }));
            Ok(Transformed::yes(filled))
        })
        .map(|t| t.data)
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
            if let Some(marked) = plan.downcast_ref::<ShardPartitionedExec>() {
                return Ok(Transformed::yes(Arc::clone(marked.input())));
            }
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
                    if let Some(stats) = self.task_stats.get(i) {
                        write_task(f, stats)?;
                    }
                }
                write!(f, "]")?;
                write_stage(f, &self.task_stats)?;
                if !self.broadcasts.is_empty() {
                    write!(f, ", broadcast inputs={}", self.broadcasts.len())?;
                }
                if !self.shuffles.is_empty() {
                    write!(
                        f,
                        ", shuffle inputs={} (partitions per task={})",
                        self.shuffles.len(),
                        self.partitions_per_task
                    )?;
                }
                let shard_wise = self.shard_wise_exchanges();
                if shard_wise > 0 {
                    write!(f, ", shard-wise (hash exchanges skipped)={shard_wise}")?;
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
            .chain(&self.shuffles)
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
        let broadcasts: Vec<_> = children.by_ref().take(self.broadcasts.len()).collect();
        let shuffles: Vec<_> = children.collect();
        if broadcasts.len() != self.broadcasts.len() || shuffles.len() != self.shuffles.len() {
            return internal_err!("DistributedExec got a different number of inputs");
        }
        Ok(Arc::new(
            Self::new(
                fragment,
                broadcasts,
                self.tasks.clone(),
                Arc::clone(&self.workers),
                Arc::clone(&self.transport),
                Arc::clone(&self.counters),
            )
            .reading_shuffles(shuffles, self.partitions_per_task),
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
        let (workers, transport) = (Arc::clone(&self.workers), Arc::clone(&self.transport));
        let (url, label) = (task.url.clone(), task.label.clone());
        let this = self.clone();
        self.counters.tasks.fetch_add(1, Ordering::Relaxed);
        self.counters
            .shards
            .fetch_add(task.positions.len() as u64, Ordering::Relaxed);
        let rows_metric = MetricBuilder::new(&self.metrics).counter("rows_received", partition);
        let bytes_metric = MetricBuilder::new(&self.metrics).counter("bytes_received", partition);
        let counters = Arc::clone(&self.counters);
        let task_stats = Arc::clone(&self.task_stats);
        if let Some(stats) = task_stats.get(partition) {
            stats.start();
        }
        let timer = TaskTimer {
            stats: Arc::clone(&task_stats),
            index: partition,
            started: Instant::now(),
        };
        let meter = {
            let (counters, task_stats) = (Arc::clone(&counters), Arc::clone(&task_stats));
            let reporter = self.clone();
            WireMeter {
                message: Arc::new(move |size| {
                    counters
                        .bytes_received
                        .fetch_add(size as u64, Ordering::Relaxed);
                    bytes_metric.add(size);
                    if let Some(stats) = task_stats.get(partition) {
                        stats.add_bytes(size as u64);
                    }
                }),
                report: Arc::new(move |report: TaskReport| {
                    if let Some(own) = &report.own {
                        reporter
                            .counters
                            .worker_us
                            .fetch_add(own.elapsed_us, Ordering::Relaxed);
                        if let Some(stats) = reporter.task_stats.get(partition) {
                            stats.spilled(own.spill_count, own.spilled_bytes);
                        }
                    }
                    for upstream in &report.upstream {
                        reporter.record_upstream(upstream);
                    }
                }),
            }
        };
        let out_schema = Arc::clone(&schema);
        let dispatch_counters = Arc::clone(&counters);
        let stream = futures::stream::once(async move {
            let dispatching = Instant::now();
            let ticket = TaskTicket {
                query_id: query_id_of(&context),
                plan: encode_plan(this.task_plan(partition, &context).await?)?,
                shuffle: None,
                memory_limit: QueryMemoryLimit::to_wire(QueryMemoryLimit::of(&context)),
            };
            let target = workers
                .target(&url, &label)
                .await
                .map_err(|s| from_status(worker_status(&label, s)))?;
            let batches = transport
                .run_task(&target, ticket.encode_to_vec(), out_schema, meter)
                .await?;
            dispatch_counters
                .dispatch_us
                .fetch_add(dispatching.elapsed().as_micros() as u64, Ordering::Relaxed);
            Ok::<_, datafusion::error::DataFusionError>(batches.map(move |batch| {
                let _timer = &timer;
                // The node (and the producer tasks it started, which are cancelled when it
                // goes) stays alive while any task streams.
                let _alive = &this;
                let batch = batch?;
                let rows = batch.num_rows();
                rows_metric.add(rows);
                counters
                    .rows_received
                    .fetch_add(rows as u64, Ordering::Relaxed);
                if let Some(stats) = task_stats.get(partition) {
                    stats.add_rows(rows as u64);
                }
                Ok(batch)
            }))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
