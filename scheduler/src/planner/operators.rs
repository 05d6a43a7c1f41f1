//! What the planner needs to know about DataFusion's operators, decided by their type (never
//! by `name()`, which changes with options: a sort with a fetch calls itself `SortExec(TopK)`).

use std::sync::Arc;

use datafusion::datasource::sink::DataSinkExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::analyze::AnalyzeExec;
#[allow(deprecated)]
use datafusion::physical_plan::coalesce_batches::CoalesceBatchesExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;

use crate::exec::distributed_exec::DistributedExec;
use crate::exec::shard_partitioned::ShardPartitionedExec;
use crate::session::sequence_functions::calls_sequence_function;

/// Operators that work partition by partition, each output partition made only of rows of the
/// same input partition (so of one shard group on a worker).
#[allow(deprecated)]
pub fn is_per_partition(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<FilterExec>().is_some()
        || node.downcast_ref::<ProjectionExec>().is_some()
        || node.downcast_ref::<CoalesceBatchesExec>().is_some()
        || node.downcast_ref::<CooperativeExec>().is_some()
        || node.downcast_ref::<LocalLimitExec>().is_some()
}

/// Single-input operators whose output column `i` is their input's column `i`, unchanged
/// (they only move, merge or cut rows).
#[allow(deprecated)]
pub fn passes_columns_through(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<CoalesceBatchesExec>().is_some()
        || node.downcast_ref::<CooperativeExec>().is_some()
        || node.downcast_ref::<LocalLimitExec>().is_some()
        || node.downcast_ref::<GlobalLimitExec>().is_some()
        || node.downcast_ref::<RepartitionExec>().is_some()
        || node.downcast_ref::<CoalescePartitionsExec>().is_some()
        || node.downcast_ref::<SortPreservingMergeExec>().is_some()
        || node.downcast_ref::<ShardPartitionedExec>().is_some()
}

/// Operators that never run on a worker: another stage, `EXPLAIN ANALYZE`'s collector, the
/// holder of scalar subquery values, and anything that writes.
pub fn stays_on_coordinator(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<DistributedExec>().is_some()
        || node.downcast_ref::<AnalyzeExec>().is_some()
        || node.downcast_ref::<ScalarSubqueryExec>().is_some()
        || node.downcast_ref::<DataSinkExec>().is_some()
        || hands_out_sequence_values(node)
}

/// Whether `node` calls `nextval` and its kin, whose values only the coordinator hands out.
fn hands_out_sequence_values(node: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
        return projection
            .expr()
            .iter()
            .any(|e| calls_sequence_function(&e.expr));
    }
    if let Some(filter) = node.downcast_ref::<FilterExec>() {
        return calls_sequence_function(filter.predicate());
    }
    if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
        let groups = aggregate.group_expr().expr().iter().map(|(e, _)| e);
        let arguments = aggregate
            .aggr_expr()
            .iter()
            .flat_map(|a| a.expressions().into_iter());
        let filters = aggregate.filter_expr().iter().flatten();
        return groups.chain(filters).any(calls_sequence_function)
            || arguments.into_iter().any(|e| calls_sequence_function(&e));
    }
    false
}
