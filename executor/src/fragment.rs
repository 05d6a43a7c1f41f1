//! Decoding, checking and running one plan fragment.
//!
//! A fragment may read data only through `ShardScanExec` (which validates its paths) and may
//! not write anything: a decoded plan that scans files by any other means, or contains a sink,
//! is refused before it runs. The fragment's partitions (one per shard) run in parallel and
//! are merged into the single stream `DoGet` returns, keeping their order if they are sorted.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
#[allow(deprecated)]
use datafusion::physical_plan::coalesce_batches::CoalesceBatchesExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use shardfusion_common::codec::decode_plan;

use crate::error::ExecutorError;

/// Decodes `bytes` and checks that the plan only reads shard files.
pub fn decode_fragment(
    bytes: &[u8],
    ctx: &TaskContext,
) -> Result<Arc<dyn ExecutionPlan>, ExecutorError> {
    let plan = decode_plan(bytes, ctx).map_err(|e| ExecutorError::BadRequest {
        reason: format!("cannot decode plan fragment: {e}"),
    })?;
    check_fragment(&plan)?;
    // So that a cancelled fragment stops even inside a join that emits many batches.
    shardfusion_common::yielding_joins::yielding_joins(plan).map_err(|e| {
        ExecutorError::BadRequest {
            reason: format!("cannot prepare plan fragment: {e}"),
        }
    })
}

fn check_fragment(plan: &Arc<dyn ExecutionPlan>) -> Result<(), ExecutorError> {
    let mut refused: Option<String> = None;
    plan.apply(|node| {
        let name = node.name();
        let reads_files = node
            .downcast_ref::<DataSourceExec>()
            .is_some_and(|ds| ds.data_source().is::<FileScanConfig>());
        // Writers are refused by type; the name test also catches any sink type a future
        // DataFusion adds, since a refused plan is only a failed query.
        let writes = node.downcast_ref::<DataSinkExec>().is_some() || name.contains("Sink");
        if reads_files || writes {
            refused = Some(format!(
                "{name} is not allowed in a fragment: workers read only the shard files a \
                 ShardScanExec names and write only through DoPut"
            ));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match refused {
        Some(reason) => Err(ExecutorError::Forbidden { reason }),
        None => Ok(()),
    }
}

/// Runs every partition of `plan` and merges them into one stream.
pub fn execute_fragment(
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<TaskContext>,
) -> Result<SendableRecordBatchStream, ExecutorError> {
    let plan: Arc<dyn ExecutionPlan> = if plan.output_partitioning().partition_count() <= 1 {
        plan
    } else if let Some(ordering) = plan.output_ordering() {
        let fetch = row_limit(&plan);
        Arc::new(SortPreservingMergeExec::new(ordering.clone(), plan).with_fetch(fetch))
    } else {
        Arc::new(CoalescePartitionsExec::new(plan))
    };
    Ok(plan.execute(0, ctx)?)
}

/// The most rows `plan` produces per partition, if a limit says so: its own fetch, or that of
/// the top-k below a projection.
fn row_limit(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    if let Some(fetch) = plan.fetch() {
        return Some(fetch);
    }
    #[allow(deprecated)]
    let passes_rows = plan.downcast_ref::<ProjectionExec>().is_some()
        || plan.downcast_ref::<CoalesceBatchesExec>().is_some()
        || plan.downcast_ref::<CooperativeExec>().is_some();
    match plan.children().as_slice() {
        [child] if passes_rows => row_limit(child),
        _ => None,
    }
}
