//! Per-worker merging of partial aggregate states.
//!
//! A fragment that ends in a `Partial` aggregate produces one state row per group *per shard*.
//! Before those rows leave the worker, [`reduce_per_worker`] merges them with a
//! `PartialReduce` aggregate, so the coordinator receives at most one state row per group per
//! worker. With groups, the states are first hash-partitioned on the group columns so that
//! the merge runs on all of the worker's cores; without, one partition merges the few rows.
//! The output is still partial state: the coordinator's `Final` aggregate finishes it.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};

/// `fragment`, topped with a `PartialReduce` of its partitions when it ends in a `Partial`
/// aggregate over more than one unsorted partition.
pub fn reduce_per_worker(
    fragment: Arc<dyn ExecutionPlan>,
    partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
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
    let group_by = partial.group_expr().as_final();
    let keys: Vec<_> = group_by.expr().iter().map(|(e, _)| Arc::clone(e)).collect();
    let input: Arc<dyn ExecutionPlan> = if keys.is_empty() || partitions <= 1 {
        Arc::new(CoalescePartitionsExec::new(Arc::clone(&fragment)))
    } else {
        Arc::new(RepartitionExec::try_new(
            Arc::clone(&fragment),
            Partitioning::Hash(keys, partitions),
        )?)
    };
    let reduce = AggregateExec::try_new(
        AggregateMode::PartialReduce,
        group_by,
        partial.aggr_expr().to_vec(),
        partial.filter_expr().to_vec(),
        input,
        partial.input_schema(),
    )?;
    Ok(Arc::new(reduce))
}
