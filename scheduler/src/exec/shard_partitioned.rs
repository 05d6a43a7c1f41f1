//! [`ShardPartitionedExec`]: marks, inside a fragment, an input that is already partitioned
//! by shard where DataFusion had planned a hash exchange.
//!
//! On a worker, partition `i` of every distributed scan of a fragment is shard group `i`, so
//! a co-located join or an aggregate grouped by the distribution column needs no exchange
//! (see `planner::partition_wise`). DataFusion checks that every partitioned join and final
//! aggregate it holds gets hash-partitioned inputs; this node keeps that check true for the
//! plan that is shown, by declaring `Hash(keys, n)` for its input's `n` shard partitions:
//! equal keys do meet in equal partitions, through the shard hash rather than DataFusion's.
//! It is declared only after DataFusion's optimizer has run, and nothing that routes rows by
//! DataFusion's hash ever reads it: the coordinator strips the node before a fragment is sent,
//! so workers run the input directly.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};

/// See the module docs.
#[derive(Debug)]
pub struct ShardPartitionedExec {
    input: Arc<dyn ExecutionPlan>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    properties: Arc<PlanProperties>,
}

impl ShardPartitionedExec {
    /// `input`, whose partitions are shard groups and whose `keys` place rows in shards.
    pub fn new(input: Arc<dyn ExecutionPlan>, keys: Vec<Arc<dyn PhysicalExpr>>) -> Self {
        let partitions = input.output_partitioning().partition_count();
        let properties = PlanProperties::new(
            input.equivalence_properties().clone(),
            Partitioning::Hash(keys.clone(), partitions),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Self {
            input,
            keys,
            properties: Arc::new(properties),
        }
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for ShardPartitionedExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "ShardPartitionedExec: by shard of [{}] (no exchange: partition i is shard group i)",
                keys.join(", ")
            ),
            DisplayFormatType::TreeRender => write!(f, "keys=[{}]", keys.join(", ")),
        }
    }
}

impl ExecutionPlan for ShardPartitionedExec {
    fn name(&self) -> &str {
        "ShardPartitionedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
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
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(Self::new(input, self.keys.clone()))),
            Err(_) => internal_err!("ShardPartitionedExec has one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

/// `plan` without its markers: what a worker runs.
pub fn without_markers(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| match node.downcast_ref::<ShardPartitionedExec>() {
        Some(marked) => Ok(Transformed::yes(Arc::clone(marked.input()))),
        None => Ok(Transformed::no(node)),
    })
    .map(|t| t.data)
}
