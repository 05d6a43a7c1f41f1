//! Partition-wise execution inside a fragment: the hash exchanges DataFusion planned for a
//! single node are dropped where shards already group the rows.
//!
//! On a worker, partition `i` of every distributed scan of a fragment is shard group `i`. A
//! subtree whose output partition `i` still holds only rows of shard group `i` is *aligned*.
//! DataFusion, not knowing this, hash-repartitions both sides of a join and the input of a
//! final aggregate. [`drop_shard_exchanges`] removes those exchanges when
//! - a partitioned hash join has two aligned inputs and a key pair that is the distribution
//!   column on both sides (a co-located join, shard by shard), or
//! - a `FinalPartitioned` aggregate has an aligned input and groups by a distribution column
//!   (every group lives in one shard).
//!
//! Both then work on each shard group separately, as Citus runs co-located joins. Each
//! dropped exchange is replaced by a `ShardPartitionedExec` marker, which keeps DataFusion's
//! checks of the shown plan true and is stripped before the fragment is sent (see its docs):
//! `EXPLAIN` shows the plan that runs. Nothing planned by DataFusion's hash reads the marker,
//! so its partition-routed dynamic filters (which assume its own hash) stay off.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{Distribution, ExecutionPlan, Partitioning};
use shardfusion_common::shard_scan::ShardScanExec;

use super::operators::is_per_partition;
use crate::exec::shard_partitioned::ShardPartitionedExec;

/// Whether output column `index` of a plan is a distribution column of the fragment's layout.
pub type IsDistributionColumn<'a> = &'a dyn Fn(&Arc<dyn ExecutionPlan>, usize) -> bool;

/// Removes the exchanges that shards make unnecessary (see the module docs), all of them or
/// none: dropping one exchange changes how its subtree is partitioned, so the result is kept
/// only if every node that needs hash-partitioned input is then fed shard-aligned input.
pub fn drop_shard_exchanges(
    fragment: Arc<dyn ExecutionPlan>,
    is_distribution_column: IsDistributionColumn<'_>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let dropped = Arc::clone(&fragment)
        .transform_up(|node| {
            if let Some(join) = node.downcast_ref::<HashJoinExec>()
                && *join.partition_mode() == PartitionMode::Partitioned
                && let (Some(left), Some(right)) = (
                    below_hash_exchange(join.left()),
                    below_hash_exchange(join.right()),
                )
                && aligned(&left)
                && aligned(&right)
                && join.on().iter().any(|(l, r)| {
                    column_index(l).is_some_and(|i| is_distribution_column(&left, i))
                        && column_index(r).is_some_and(|i| is_distribution_column(&right, i))
                })
            {
                let children = vec![marked(join.left(), left), marked(join.right(), right)];
                let plan = replace_children_if_necessary(Arc::clone(&node), children)?;
                return Ok(Transformed::yes(plan));
            }
            if let Some(aggregate) = node.downcast_ref::<AggregateExec>()
                && *aggregate.mode() == AggregateMode::FinalPartitioned
                && let Some(input) = below_hash_exchange(aggregate.input())
                && aligned(&input)
                && groups_by_distribution_column(aggregate, &input, is_distribution_column)
            {
                let children = vec![marked(aggregate.input(), input)];
                let plan = replace_children_if_necessary(Arc::clone(&node), children)?;
                return Ok(Transformed::yes(plan));
            }
            Ok(Transformed::no(node))
        })?
        .data;
    Ok(if shard_wise(&dropped) {
        dropped
    } else {
        fragment
    })
}

/// Whether no hash exchange is left and every node that requires hash-partitioned input
/// gets shard-aligned input instead.
fn shard_wise(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut ok = true;
    let _ = plan.apply(|node| {
        let hash_exchange = node
            .downcast_ref::<RepartitionExec>()
            .is_some_and(|r| matches!(r.partitioning(), Partitioning::Hash(_, _)));
        let needs_hash = node
            .input_distribution_requirements()
            .into_per_child()
            .iter()
            .any(|d| matches!(d, Distribution::KeyPartitioned(_)));
        if hash_exchange || (needs_hash && !node.children().into_iter().all(aligned)) {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ok
}

/// `input` (what the hash exchange `exchange` read) marked as partitioned by shard on the
/// exchange's keys, in place of the exchange.
fn marked(
    exchange: &Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    let keys = match exchange
        .downcast_ref::<RepartitionExec>()
        .map(|r| r.partitioning())
    {
        Some(Partitioning::Hash(keys, _)) => keys.clone(),
        _ => Vec::new(),
    };
    Arc::new(ShardPartitionedExec::new(input, keys))
}

/// The input of `node` if `node` is a hash repartition.
fn below_hash_exchange(node: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let repartition = node.downcast_ref::<RepartitionExec>()?;
    if !matches!(repartition.partitioning(), Partitioning::Hash(_, _))
        || repartition.preserve_order()
    {
        return None;
    }
    Some(Arc::clone(repartition.input()))
}

/// Whether a `FinalPartitioned` aggregate's groups each lie in one shard: a grouping column
/// (seen through the partial aggregate below it) is a distribution column.
fn groups_by_distribution_column(
    aggregate: &AggregateExec,
    input: &Arc<dyn ExecutionPlan>,
    is_distribution_column: IsDistributionColumn<'_>,
) -> bool {
    aggregate.group_expr().is_single()
        && aggregate
            .group_expr()
            .expr()
            .iter()
            .any(|(expr, _)| column_index(expr).is_some_and(|i| is_distribution_column(input, i)))
}

/// Whether output partition `i` of `plan` holds only rows of shard group `i`.
fn aligned(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(marked) = plan.downcast_ref::<ShardPartitionedExec>() {
        return aligned(marked.input());
    }
    if let Some(scan) = plan.downcast_ref::<ShardScanExec>() {
        return scan.distribution_column().is_some() && scan.replicas().is_empty();
    }
    if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
        return match join.partition_mode() {
            PartitionMode::Partitioned => aligned(join.left()) && aligned(join.right()),
            // Output follows the probe side's partitions, unless unmatched build rows are
            // emitted at the end (by whichever partition finishes last).
            PartitionMode::CollectLeft => {
                matches!(
                    join.join_type(),
                    JoinType::Inner
                        | JoinType::Right
                        | JoinType::RightSemi
                        | JoinType::RightAnti
                        | JoinType::RightMark
                ) && aligned(join.right())
            }
            PartitionMode::Auto => false,
        };
    }
    if let Some(aggregate) = plan.downcast_ref::<AggregateExec>() {
        return matches!(
            aggregate.mode(),
            AggregateMode::Partial | AggregateMode::FinalPartitioned
        ) && aligned(aggregate.input());
    }
    if let Some(sort) = plan.downcast_ref::<SortExec>() {
        return sort.preserve_partitioning() && aligned(sort.input());
    }
    is_per_partition(plan) && plan.children().first().is_some_and(|c| aligned(c))
}

fn column_index(expr: &Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> Option<usize> {
    expr.downcast_ref::<Column>().map(Column::index)
}
