//! [`BroadcastExec`]: the small side of a join, computed on the coordinator and shipped to
//! every worker inside the fragment that joins with it.
//!
//! When a join is not co-located but one side is small, the coordinator runs that side first
//! and embeds its rows in the fragment (Arrow IPC inside the datafusion-proto bytes), so each
//! worker joins its own shards against the whole small side. In the coordinator's plan the node
//! starts as a placeholder naming its input by position; the coordinator fills it with the
//! rows just before the fragment is encoded for a worker.
//!
//! Invariants:
//! - one output partition, holding every broadcast row;
//! - an unfilled placeholder never runs: executing it is an internal error.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, StatisticsArgs,
};

/// Rows of a broadcast join side; see the module docs.
#[derive(Debug, Clone)]
pub struct BroadcastExec {
    /// Which of the coordinator-side inputs of the surrounding `DistributedExec` it carries.
    input: usize,
    schema: SchemaRef,
    /// `None` while it is a placeholder.
    batches: Option<Arc<Vec<RecordBatch>>>,
    properties: Arc<PlanProperties>,
}

impl BroadcastExec {
    /// A placeholder for the rows of coordinator-side input `input`.
    pub fn placeholder(input: usize, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            input,
            schema,
            batches: None,
            properties: Arc::new(properties),
        }
    }

    /// The same node carrying `batches`.
    pub fn with_batches(&self, batches: Arc<Vec<RecordBatch>>) -> Self {
        Self {
            batches: Some(batches),
            ..self.clone()
        }
    }

    pub fn input(&self) -> usize {
        self.input
    }

    pub fn batches(&self) -> Option<&Arc<Vec<RecordBatch>>> {
        self.batches.as_ref()
    }

    fn row_count(&self) -> Option<usize> {
        self.batches
            .as_ref()
            .map(|b| b.iter().map(RecordBatch::num_rows).sum())
    }
}

impl DisplayAs for BroadcastExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "BroadcastExec: input={}", self.input)?;
                if let Some(rows) = self.row_count() {
                    write!(f, ", rows={rows}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => write!(f, "input={}", self.input),
        }
    }
}

impl ExecutionPlan for BroadcastExec {
    fn name(&self) -> &str {
        "BroadcastExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
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
        if !children.is_empty() {
            return internal_err!("BroadcastExec has no children");
        }
        Ok(self)
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut statistics = Statistics::new_unknown(&self.schema);
        if let Some(rows) = self.row_count() {
            statistics.num_rows = Precision::Exact(rows);
        }
        Ok(Arc::new(statistics))
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("BroadcastExec has one partition, not {partition}");
        }
        let Some(batches) = &self.batches else {
            return internal_err!(
                "BroadcastExec for input {} was sent without its rows",
                self.input
            );
        };
        Ok(Box::pin(MemoryStream::try_new(
            batches.as_ref().clone(),
            Arc::clone(&self.schema),
            None,
        )?))
    }
}
