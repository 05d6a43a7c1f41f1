//! Per-worker merging of partial aggregate states.
//!
//! A fragment that ends in a `Partial` aggregate produces one state row per group *per shard*.
//! Before those rows leave the worker, [`reduce_per_worker`] merges its partitions with a
//! `PartialReduce` aggregate, so the coordinator receives at most one state row per group per
//! worker. The output is still partial state: the coordinator's `Final` aggregate finishes it.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

/// `fragment`, topped with a `PartialReduce` of its partitions when it ends in a `Partial`
/// aggregate over more than one unsorted partition.
pub fn reduce_per_worker(fragment: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(partial) = fragment.downcast_ref::<AggregateExec>() else {
        return Ok(fragment);
    };
    // A sorted partial output may be relied on above; merging its partitions would lose it.
    if *partial.mode() != AggregateMode::Partial
        || fragment.output_partitioning().partition_count() <= 1
        || fragment.output_ordering().is_some()
    {
        return Ok(fragment);
    }
    let reduce = AggregateExec::try_new(
        AggregateMode::PartialReduce,
        partial.group_expr().as_final(),
        partial.aggr_expr().to_vec(),
        partial.filter_expr().to_vec(),
        Arc::new(CoalescePartitionsExec::new(Arc::clone(&fragment))),
        partial.input_schema(),
    )?;
    Ok(Arc::new(reduce))
}
