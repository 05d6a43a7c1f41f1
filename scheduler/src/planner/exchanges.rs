//! Recognizing DataFusion's exchanges and the shapes around them (join sides, window inputs),
//! and small facts about joins and columns the planner's passes share.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::TreeNode;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, UnKnownColumn};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

use super::broadcast::JoinSide;

/// Whether output column `index` (before the join's projection) of a shuffle join partitions
/// its rows: the shuffle has one key and the column is that key on a side whose rows are
/// never null-extended (NULL keys of unmatched rows would be spread over every partition).
pub(super) fn shuffle_key_column(join: &HashJoinExec, index: usize) -> bool {
    let [(left_key, right_key)] = join.on() else {
        return false;
    };
    let left_width = join.left().schema().fields().len();
    let from_left = || index < left_width && column_index(left_key) == Some(index);
    let from_right =
        |offset: usize| index >= offset && column_index(right_key) == Some(index - offset);
    match join.join_type() {
        JoinType::Inner => from_left() || from_right(left_width),
        JoinType::Left => from_left(),
        JoinType::Right => from_right(left_width),
        JoinType::Full => false,
        JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => from_left(),
        JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => from_right(0),
    }
}

pub(super) fn mentions_unknown_column(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.exists(|e| Ok(e.is::<UnKnownColumn>())).unwrap_or(true)
}

pub(super) fn column_index(expr: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    expr.downcast_ref::<Column>().map(Column::index)
}

pub(super) fn is_round_robin(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<RepartitionExec>()
        .is_some_and(|r| matches!(r.partitioning(), Partitioning::RoundRobinBatch(_)))
}

/// The input of a hash exchange that does not merge sorted streams.
pub(super) fn below_join_exchange_hash(
    node: &Arc<dyn ExecutionPlan>,
) -> Option<&Arc<dyn ExecutionPlan>> {
    let repartition = node.downcast_ref::<RepartitionExec>()?;
    (matches!(repartition.partitioning(), Partitioning::Hash(_, _))
        && !repartition.preserve_order())
    .then(|| repartition.input())
}

/// What a join side reads below the exchange DataFusion put there for one machine: a hash
/// repartition (partitioned join), a merge into one partition (collected build side) or a
/// round-robin spread. A shuffle replaces it. Sorted merges are kept.
pub(super) fn below_join_exchange(node: &Arc<dyn ExecutionPlan>) -> &Arc<dyn ExecutionPlan> {
    if let Some(repartition) = node.downcast_ref::<RepartitionExec>()
        && !repartition.preserve_order()
    {
        return repartition.input();
    }
    if let Some(coalesce) = node.downcast_ref::<CoalescePartitionsExec>() {
        return coalesce.input();
    }
    node
}

/// Whether `join_type` emits rows of `side` that match nothing (outer, anti and mark joins).
pub(super) fn emits_unmatched(join_type: JoinType, side: JoinSide) -> bool {
    match side {
        JoinSide::Left => matches!(
            join_type,
            JoinType::Left | JoinType::Full | JoinType::LeftAnti | JoinType::LeftMark
        ),
        JoinSide::Right => matches!(
            join_type,
            JoinType::Right | JoinType::Full | JoinType::RightAnti | JoinType::RightMark
        ),
    }
}

/// Whether `node` computes window functions (over partitions of its input).
pub(super) fn is_window(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<BoundedWindowAggExec>().is_some()
        || node.downcast_ref::<WindowAggExec>().is_some()
}

/// For a window fed by a hash exchange on its partition keys (under an optional
/// per-partition sort): the sort, the exchange's input and its keys.
pub(super) type WindowExchange<'a> = (
    Option<&'a Arc<dyn ExecutionPlan>>,
    &'a Arc<dyn ExecutionPlan>,
    Vec<Arc<dyn PhysicalExpr>>,
);

pub(super) fn window_exchange(window: &Arc<dyn ExecutionPlan>) -> Option<WindowExchange<'_>> {
    if !is_window(window) {
        return None;
    }
    let child = *window.children().first()?;
    let (sort, exchange) = match child.downcast_ref::<SortExec>() {
        Some(sort) if sort.preserve_partitioning() => (Some(child), sort.input()),
        Some(_) => return None,
        None => (None, child),
    };
    let keys = exchange_hash_keys(exchange)?;
    let below = below_join_exchange_hash(exchange)?;
    Some((sort, below, keys))
}

/// The keys of a hash exchange.
pub(super) fn exchange_hash_keys(
    node: &Arc<dyn ExecutionPlan>,
) -> Option<Vec<Arc<dyn PhysicalExpr>>> {
    match node.downcast_ref::<RepartitionExec>()?.partitioning() {
        Partitioning::Hash(keys, _) => Some(keys.clone()),
        _ => None,
    }
}

pub(super) fn through_exchange(node: &Arc<dyn ExecutionPlan>) -> &Arc<dyn ExecutionPlan> {
    if is_exchange(node) {
        node.children().first().copied().unwrap_or(node)
    } else {
        node
    }
}

/// An exchange between the two phases of an aggregate, or under a join.
pub(crate) fn is_exchange(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<CoalescePartitionsExec>().is_some()
        || node
            .downcast_ref::<RepartitionExec>()
            .is_some_and(|r| matches!(r.partitioning(), Partitioning::Hash(_, _)))
}
