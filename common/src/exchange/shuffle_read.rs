//! [`ShuffleReadExec`]: the reading end of a worker-to-worker hash shuffle.
//!
//! A shuffle moves the rows of a producer stage (one task per worker, each ending in a hash
//! `RepartitionExec` into `P` partitions) to the consumer stage's tasks: consumer task `t`
//! owns the partitions `t·m .. t·m+m` and its output partition `j` reads partition `t·m + j`
//! from every producer task, straight from the producer's worker. The coordinator relays no
//! rows.
//!
//! In the coordinator's plan the node is a placeholder naming the shuffle input of the
//! surrounding `DistributedExec` by position; before a consumer task's fragment is encoded the
//! coordinator fills in the producers (their workers and plans) and the partitions the task
//! owns. The first request for any partition of a producer task starts that task on its worker;
//! see the worker's `shuffle_stages`.
//!
//! A shuffle is one of two kinds:
//! - **hash**: both sides of a join are repartitioned by DataFusion's hash of the join keys
//!   into `P` partitions; output partition `j` of consumer task `t` is global partition
//!   `t·m + j`, so two such shuffles with the same `P` and owners are co-partitioned, and the
//!   node declares `Hash(keys, m)`;
//! - **shard-aligned**: one side is sent into the shards of the other (a distributed table),
//!   routed by the shard its key would hash to (`shard_index`); output partition `j` of a task
//!   is the shard at the task's `j`-th shard position, exactly like the partitions of the
//!   task's scans, so the key column behaves like a distribution column.
//!
//! An unfilled placeholder never runs: executing it is an internal error.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, StatisticsArgs,
};
use futures::{StreamExt, TryStreamExt};
use prost::Message;

use super::task_report::ReceivedReports;
use super::transport::{TaskTarget, TransportExtension, WireMeter};
use crate::query_limits::QueryMemoryLimit;
use crate::wire::{ShuffleOutput, TaskTicket};

/// One task of a producer stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffleProducer {
    pub target: TaskTarget,
    /// The task's plan (datafusion-proto bytes), ending in the shuffle's hash repartition.
    pub plan: Arc<Vec<u8>>,
    /// Names this run of the task on its worker; unique per statement, stage and task.
    pub stage_key: String,
}

/// Where a consumer task reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffleSource {
    pub producers: Vec<ShuffleProducer>,
    /// The producers' partition each output partition reads, in output order.
    pub partitions: Vec<usize>,
    /// How many partitions of each producer task all consumers read together (the producer
    /// forgets the task once they were all asked for).
    pub readers: usize,
}

/// How a shuffle routes rows; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShuffleKind {
    Hash,
    /// Into shards; the column (of the node's schema) the rows were routed by.
    ShardAligned {
        key_column: usize,
    },
}

/// The reading end of a shuffle; see the module docs.
#[derive(Debug, Clone)]
pub struct ShuffleReadExec {
    /// Which shuffle input of the surrounding `DistributedExec` it reads.
    input: usize,
    schema: SchemaRef,
    /// The hash keys, over `schema` (empty for a shard-aligned shuffle).
    keys: Vec<Arc<dyn PhysicalExpr>>,
    kind: ShuffleKind,
    /// Output partitions: per consumer task for a hash shuffle, the shards for a
    /// shard-aligned one (until filled for one task).
    partitions: usize,
    /// `None` while it is a placeholder.
    source: Option<ShuffleSource>,
    /// What the producer partitions it read reported at their end.
    received: ReceivedReports,
    properties: Arc<PlanProperties>,
}

impl ShuffleReadExec {
    /// A placeholder for hash shuffle input `input`, `partitions` partitions per consumer task,
    /// hash-partitioned by `keys`.
    pub fn placeholder(
        input: usize,
        schema: SchemaRef,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        partitions: usize,
    ) -> Self {
        Self::new(input, schema, keys, ShuffleKind::Hash, partitions)
    }

    /// A placeholder for shard-aligned shuffle input `input` into `shards` shards, routed by
    /// column `key_column`.
    pub fn shard_aligned(
        input: usize,
        schema: SchemaRef,
        key_column: usize,
        shards: usize,
    ) -> Self {
        Self::new(
            input,
            schema,
            Vec::new(),
            ShuffleKind::ShardAligned { key_column },
            shards,
        )
    }

    fn new(
        input: usize,
        schema: SchemaRef,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        kind: ShuffleKind,
        partitions: usize,
    ) -> Self {
        let partitions = partitions.max(1);
        let partitioning = match kind {
            ShuffleKind::Hash => Partitioning::Hash(keys.clone(), partitions),
            ShuffleKind::ShardAligned { .. } => Partitioning::UnknownPartitioning(partitions),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            input,
            schema,
            keys,
            kind,
            partitions,
            source: None,
            received: ReceivedReports::default(),
            properties: Arc::new(properties),
        }
    }

    /// The same node reading from `source` (one output partition per partition it names).
    pub fn with_source(&self, source: ShuffleSource) -> Self {
        let mut filled = Self::new(
            self.input,
            Arc::clone(&self.schema),
            self.keys.clone(),
            self.kind,
            source.partitions.len(),
        );
        filled.source = Some(source);
        filled
    }

    pub fn kind(&self) -> ShuffleKind {
        self.kind
    }

    pub fn input(&self) -> usize {
        self.input
    }

    pub fn keys(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.keys
    }

    pub fn partitions(&self) -> usize {
        self.partitions
    }

    pub fn source(&self) -> Option<&ShuffleSource> {
        self.source.as_ref()
    }

    /// What the producer partitions this node read reported (see `task_report`).
    pub fn received(&self) -> &ReceivedReports {
        &self.received
    }
}

impl DisplayAs for ShuffleReadExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                match self.kind {
                    ShuffleKind::Hash => write!(
                        f,
                        "ShuffleReadExec: input={}, hash=[{}], partitions_per_task={}",
                        self.input,
                        keys.join(", "),
                        self.partitions
                    )?,
                    ShuffleKind::ShardAligned { key_column } => write!(
                        f,
                        "ShuffleReadExec: input={}, into shards by {}, shards={}",
                        self.input,
                        self.schema.field(key_column).name(),
                        self.partitions
                    )?,
                }
                if let Some(source) = &self.source {
                    write!(f, ", producers={}", source.producers.len())?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => write!(f, "input={}", self.input),
        }
    }
}

impl ExecutionPlan for ShuffleReadExec {
    fn name(&self) -> &str {
        "ShuffleReadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for key in &self.keys {
            if f(key)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("ShuffleReadExec has no children");
        }
        Ok(self)
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::new(Statistics::new_unknown(&self.schema)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition >= self.partitions {
            return internal_err!(
                "ShuffleReadExec has {} partitions, not {partition}",
                self.partitions
            );
        }
        let Some(source) = &self.source else {
            return internal_err!(
                "ShuffleReadExec for input {} was sent without its producers",
                self.input
            );
        };
        let Some(transport) = context
            .session_config()
            .get_extension::<TransportExtension>()
        else {
            return internal_err!("this node has no transport to reach shuffle producers");
        };
        let Some(global) = source.partitions.get(partition).map(|p| *p as u64) else {
            return internal_err!("ShuffleReadExec was filled without partition {partition}");
        };
        let readers = source.readers as u64;
        let memory_limit = QueryMemoryLimit::to_wire(QueryMemoryLimit::of(&context));
        let schema = Arc::clone(&self.schema);
        let producers = source.producers.clone();
        let received = self.received.clone();
        let stream = futures::stream::once(async move {
            let streams = futures::future::try_join_all(producers.iter().map(|producer| {
                let ticket = TaskTicket {
                    query_id: producer.stage_key.clone(),
                    plan: producer.plan.as_ref().clone(),
                    shuffle: Some(ShuffleOutput {
                        stage_key: producer.stage_key.clone(),
                        partition: global,
                        readers,
                    }),
                    memory_limit,
                }
                .encode_to_vec();
                transport.0.run_task(
                    &producer.target,
                    ticket,
                    Arc::clone(&schema),
                    WireMeter::reports_into(received.clone()),
                )
            }))
            .await?;
            Ok::<_, datafusion::error::DataFusionError>(futures::stream::select_all(streams))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream.boxed(),
        )))
    }
}
