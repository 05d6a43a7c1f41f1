//! Broadcast joins: when a join is not co-located, run its small side on the coordinator and
//! send the rows to every worker of the large side, so the join and everything above it
//! still runs on the workers.
//!
//! The choice is made on DataFusion's row estimates (catalog row counts, narrowed by its
//! filter and join estimates). A side is broadcast only when
//! - it is estimated at no more than [`MAX_BROADCAST_ROWS`] rows, and
//! - sending it to every worker moves fewer rows than pulling the other side to the
//!   coordinator would (estimate × workers < the other side's estimate), and
//! - the other side drives the join: its rows are the ones output or probed, so a worker
//!   never emits the small side's unmatched rows on its own (the rule for reference tables).
//!
//! [`cut_broadcasts`] swaps each chosen side for a `BroadcastExec` placeholder inside a
//! fragment and returns the sides as coordinator-side inputs of the `DistributedExec`.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{JoinType, Result};
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext};
use shardfusion_common::broadcast::BroadcastExec;

/// The largest estimated row count a broadcast side may have.
pub const MAX_BROADCAST_ROWS: usize = 2_000_000;

/// One input of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinSide {
    Left,
    Right,
}

/// DataFusion's estimate of how many rows `plan` produces, if it has one.
pub fn estimated_rows(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .ok()
        .and_then(|s| s.num_rows.get_value().copied())
}

/// Whether a join with one side replicated to every worker gives each row of the other side
/// its complete answer on its own worker: that side's rows are the ones output or probed,
/// never the replicated side's unmatched rows.
pub fn drives_join(join_type: JoinType, side: JoinSide) -> bool {
    let left = side == JoinSide::Left;
    match join_type {
        JoinType::Inner => true,
        JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => left,
        JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => !left,
        JoinType::Full => false,
    }
}

/// Whether `small` may be broadcast to the `workers` running `large` (see the module docs).
pub fn worth_broadcasting(
    small: &Arc<dyn ExecutionPlan>,
    large: &Arc<dyn ExecutionPlan>,
    workers: usize,
) -> bool {
    let Some(small_rows) = estimated_rows(small) else {
        return false;
    };
    if small_rows > MAX_BROADCAST_ROWS {
        return false;
    }
    let large_rows = estimated_rows(large).unwrap_or(usize::MAX);
    small_rows.saturating_mul(workers.max(1)) < large_rows
}

/// A fragment with placeholders, and the coordinator-side inputs that fill them.
pub type CutFragment = (Arc<dyn ExecutionPlan>, Vec<Arc<dyn ExecutionPlan>>);

/// Replaces, inside `fragment`, the side of every hash join that `broadcast_side` names with a
/// `BroadcastExec` placeholder (below any exchange on that side). Returns the new fragment and
/// the replaced sides, in placeholder order.
pub fn cut_broadcasts(
    fragment: Arc<dyn ExecutionPlan>,
    broadcast_side: impl Fn(&HashJoinExec) -> Option<JoinSide>,
) -> Result<CutFragment> {
    let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    let fragment = fragment
        .transform_down(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(side) = broadcast_side(join) else {
                return Ok(Transformed::no(node));
            };
            let (index, child) = match side {
                JoinSide::Left => (0, join.left()),
                JoinSide::Right => (1, join.right()),
            };
            let replaced = replace_below_exchange(child, &mut |input| {
                let placeholder = BroadcastExec::placeholder(inputs.len(), input.schema());
                inputs.push(input);
                Arc::new(placeholder)
            })?;
            let mut children: Vec<Arc<dyn ExecutionPlan>> =
                node.children().into_iter().cloned().collect();
            children[index] = replaced;
            Ok(Transformed::yes(replace_children_if_necessary(
                Arc::clone(&node),
                children,
            )?))
        })?
        .data;
    Ok((fragment, inputs))
}

/// Applies `replace` to `node`, or to its input when `node` is an exchange.
fn replace_below_exchange(
    node: &Arc<dyn ExecutionPlan>,
    replace: &mut dyn FnMut(Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if super::distribute_rule::is_exchange(node) {
        let input = Arc::clone(node.children()[0]);
        return replace_children_if_necessary(Arc::clone(node), vec![replace(input)]);
    }
    Ok(replace(Arc::clone(node)))
}
