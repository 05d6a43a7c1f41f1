//! [`DistributedExec`]: the coordinator's side of a plan fragment that runs on the workers.
//!
//! It holds the fragment (a plan whose leaf is a `ShardScanExec` over all shards involved) and
//! one task per worker. Output partition `i` is worker task `i`: the fragment is restricted to
//! that worker's shards, encoded with datafusion-proto, sent as a Flight `DoGet` ticket, and the
//! returned batches are streamed on. Nothing is sent before the partition is polled.
//!
//! The fragment is shown as this node's child so that `EXPLAIN` prints it, but it is never
//! executed on the coordinator.

use std::fmt;
use std::sync::Arc;

use arrow_flight::Ticket;
use arrow_flight::error::FlightError;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::{EmptyRecordBatchStream, RecordBatchStreamAdapter};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use shardfusion_common::codec::encode_plan;
use shardfusion_common::ids::NodeId;
use shardfusion_common::shard_scan::{ShardFiles, ShardScanExec};
use shardfusion_common::status::from_status;
use shardfusion_common::wire::TaskTicket;

use crate::worker_pool::WorkerPool;

/// The part of a fragment one worker runs.
#[derive(Debug, Clone)]
pub struct WorkerTask {
    pub node_id: NodeId,
    /// The worker's Flight endpoint.
    pub url: String,
    /// `host:port`, for messages.
    pub label: String,
    pub shards: Vec<ShardFiles>,
}

/// Runs a fragment on the workers and streams the results back; one partition per worker.
#[derive(Debug)]
pub struct DistributedExec {
    fragment: Arc<dyn ExecutionPlan>,
    tasks: Vec<WorkerTask>,
    workers: Arc<WorkerPool>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DistributedExec {
    pub fn new(
        fragment: Arc<dyn ExecutionPlan>,
        tasks: Vec<WorkerTask>,
        workers: Arc<WorkerPool>,
    ) -> Self {
        let properties = PlanProperties::new(
            fragment.equivalence_properties().clone(),
            Partitioning::UnknownPartitioning(tasks.len().max(1)),
            fragment.pipeline_behavior(),
            fragment.boundedness(),
        );
        Self {
            fragment,
            tasks,
            workers,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn tasks(&self) -> &[WorkerTask] {
        &self.tasks
    }

    pub fn fragment(&self) -> &Arc<dyn ExecutionPlan> {
        &self.fragment
    }

    /// The fragment with its scan narrowed to `shards`.
    fn fragment_for(&self, shards: &[ShardFiles]) -> Result<Arc<dyn ExecutionPlan>> {
        Arc::clone(&self.fragment)
            .transform_up(|node| {
                if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
                    let narrowed: Arc<dyn ExecutionPlan> =
                        Arc::new(scan.with_shards(shards.to_vec())?);
                    return Ok(Transformed::yes(narrowed));
                }
                Ok(Transformed::no(node))
            })
            .map(|t| t.data)
    }
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
                    let ids: Vec<String> =
                        task.shards.iter().map(|s| s.shard_id.to_string()).collect();
                    write!(
                        f,
                        "node {} ({}) shards {}",
                        task.node_id,
                        task.label,
                        ids.join(",")
                    )?;
                }
                write!(f, "]")
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
        vec![&self.fragment]
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
        let [fragment] = <[_; 1]>::try_from(children)
            .or_else(|_| internal_err!("DistributedExec takes exactly one fragment"))?;
        Ok(Arc::new(Self::new(
            fragment,
            self.tasks.clone(),
            Arc::clone(&self.workers),
        )))
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
        let plan = encode_plan(self.fragment_for(&task.shards)?)?;
        let ticket = TaskTicket {
            query_id: context.session_id(),
            plan,
        };
        let mut client = self
            .workers
            .client(&task.url)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let rows = MetricBuilder::new(&self.metrics).counter("rows_received", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_received", partition);
        let label = task.label.clone();
        let out_schema = Arc::clone(&schema);
        let to_error = move |e: FlightError| {
            let status = match e {
                FlightError::Tonic(s) => *s,
                other => tonic::Status::unavailable(other.to_string()),
            };
            let status = if status.code() == tonic::Code::Unavailable {
                tonic::Status::unavailable(format!(
                    "worker {label} is unavailable: {}",
                    status.message()
                ))
            } else {
                status
            };
            from_status(status)
        };
        let stream = futures::stream::once(async move {
            let to_error = to_error.clone();
            let batches = client
                .do_get(Ticket::new(ticket.encode_to_vec()))
                .await
                .map_err(&to_error)?;
            Ok::<_, datafusion::error::DataFusionError>(batches.map_err(to_error).map(
                move |batch| {
                    let batch = batch?;
                    rows.add(batch.num_rows());
                    bytes.add(batch.get_array_memory_size());
                    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                    Ok(RecordBatch::try_new_with_options(
                        Arc::clone(&out_schema),
                        batch.columns().to_vec(),
                        &options,
                    )?)
                },
            ))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
