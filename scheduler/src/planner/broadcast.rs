//! Broadcast joins: when a join is not co-located, run its small side on the coordinator and
//! send the rows to every worker of the large side, so the join and everything above it
//! still runs on the workers.
//!
//! The choice is made on row estimates (`DistributeRule::rows`, [`super::row_estimates`]).
//! A side is broadcast only when
//! - it is estimated at no more than `shardfusion.broadcast_join_max_rows` rows
//!   ([`MAX_BROADCAST_ROWS`] unless set; see [`super::PlannerOptions`]), and
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
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};

use super::distribute_rule::{DistributeRule, Layout};
use shardfusion_common::broadcast::BroadcastExec;

/// The largest estimated row count a broadcast side may have, unless set otherwise.
pub const MAX_BROADCAST_ROWS: usize = 2_000_000;

/// One input of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinSide {
    Left,
    Right,
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

/// Whether a side estimated at `small_rows` may be broadcast to the `workers` running a side
/// estimated at `large_rows` (see the module docs), if no more than `max_rows` (`0`: never).
pub fn worth_broadcasting(
    small_rows: Option<usize>,
    large_rows: Option<usize>,
    workers: usize,
    max_rows: usize,
) -> bool {
    let Some(small_rows) = small_rows else {
        return false;
    };
    if max_rows == 0 || small_rows > max_rows {
        return false;
    }
    small_rows.saturating_mul(workers.max(1)) < large_rows.unwrap_or(usize::MAX)
}

/// A fragment with placeholders, and the coordinator-side inputs that fill them.
pub type CutFragment = (Arc<dyn ExecutionPlan>, Vec<Arc<dyn ExecutionPlan>>);

/// Replaces, inside `fragment`, the side of every hash join that `broadcast_side` names with a
/// `BroadcastExec` placeholder. Returns the new fragment and the replaced sides, in
/// placeholder order.
///
/// The join is rebuilt to collect the broadcast rows once as its build side (swapping its
/// inputs if they were on the right), with no exchange on either side: the other side's
/// partitions, one per shard, probe it where they are.
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
            let (small, other) = match side {
                JoinSide::Left => (join.left(), join.right()),
                JoinSide::Right => (join.right(), join.left()),
            };
            let (small_exchange, small) = (Arc::clone(small), without_exchange(small));
            let placeholder: Arc<dyn ExecutionPlan> =
                Arc::new(BroadcastExec::placeholder(inputs.len(), small.schema()));
            inputs.push(small);
            // A null-aware anti join cannot swap its inputs: it keeps its shape and exchanges.
            if side == JoinSide::Right && join.null_aware {
                let placeholder = if Arc::ptr_eq(&small_exchange, &inputs[inputs.len() - 1]) {
                    placeholder
                } else {
                    replace_children_if_necessary(small_exchange, vec![placeholder])?
                };
                let children = vec![Arc::clone(join.left()), placeholder];
                return Ok(Transformed::yes(replace_children_if_necessary(
                    Arc::clone(&node),
                    children,
                )?));
            }
            let other = without_exchange(other);
            let children = match side {
                JoinSide::Left => vec![placeholder, other],
                JoinSide::Right => vec![other, placeholder],
            };
            let rebuilt = join
                .builder()
                .reset_state()
                .with_new_children(children)?
                .with_partition_mode(PartitionMode::CollectLeft)
                .build()?;
            let plan = match side {
                JoinSide::Left => Arc::new(rebuilt) as Arc<dyn ExecutionPlan>,
                JoinSide::Right => rebuilt.swap_inputs(PartitionMode::CollectLeft)?,
            };
            Ok(Transformed::yes(plan))
        })?
        .data;
    Ok((fragment, inputs))
}

/// `node`'s input if `node` is an exchange, else `node`.
fn without_exchange(node: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    if super::exchanges::is_exchange(node) {
        return Arc::clone(node.children()[0]);
    }
    Arc::clone(node)
}

impl DistributeRule {
    /// The broadcast that could run a join that is not co-located: the side small enough to
    /// send to the workers of the other, with those workers' layout.
    pub(super) fn broadcast_choice(
        &self,
        left: &Arc<dyn ExecutionPlan>,
        right: &Arc<dyn ExecutionPlan>,
        l: &Option<Layout>,
        r: &Option<Layout>,
        join_type: JoinType,
    ) -> Option<(Layout, JoinSide)> {
        let max_rows = self.options.lock().broadcast_join_max_rows;
        let broadcast = |driver: &Option<Layout>, driver_plan, small, small_side| {
            let driver = driver.as_ref().filter(|d| d.replicated_on.is_none())?;
            let driver_side = match small_side {
                JoinSide::Left => JoinSide::Right,
                JoinSide::Right => JoinSide::Left,
            };
            (drives_join(join_type, driver_side)
                && worth_broadcasting(
                    self.rows(small),
                    self.rows(driver_plan),
                    driver.worker_count(),
                    max_rows,
                ))
            .then(|| (driver.clone(), small_side))
        };
        broadcast(l, left, right, JoinSide::Right)
            .or_else(|| broadcast(r, right, left, JoinSide::Left))
    }

    /// Whether `broadcast` (a side copied to every worker of the other) sends fewer rows, by
    /// estimate, than moving side `moved` into the other side's shards: a filtered dimension is
    /// cheaper to copy to every worker than a fact table to move once. (The copy's first trip,
    /// to the coordinator, is not counted.)
    pub(super) fn broadcast_beats_move(
        &self,
        left: &Arc<dyn ExecutionPlan>,
        right: &Arc<dyn ExecutionPlan>,
        moved: JoinSide,
        broadcast: Option<&(Layout, JoinSide)>,
    ) -> bool {
        let Some((layout, small_side)) = broadcast else {
            return false;
        };
        let side = |which: JoinSide| match which {
            JoinSide::Left => left,
            JoinSide::Right => right,
        };
        let rows = |plan| self.rows(plan).unwrap_or(usize::MAX);
        rows(side(*small_side)).saturating_mul(layout.worker_count().max(1)) < rows(side(moved))
    }
}

#[cfg(test)]
mod tests {
    use super::worth_broadcasting;

    #[test]
    fn zero_max_rows_never_broadcasts_even_an_empty_side() {
        // A side estimated at 0 rows (a filter its min/max rule out) slipped through `0`.
        assert!(!worth_broadcasting(Some(0), Some(1_000), 2, 0));
        assert!(!worth_broadcasting(Some(10), Some(1_000), 2, 0));
        assert!(worth_broadcasting(Some(0), Some(1_000), 2, 2_000_000));
    }

    #[test]
    fn a_side_is_broadcast_only_below_its_limit_and_the_other_side_divided_by_workers() {
        assert!(worth_broadcasting(Some(400), Some(1_000), 2, 2_000_000));
        assert!(!worth_broadcasting(Some(500), Some(1_000), 2, 2_000_000));
        assert!(!worth_broadcasting(Some(400), Some(1_000), 2, 300));
        assert!(!worth_broadcasting(None, Some(1_000), 2, 2_000_000));
        assert!(worth_broadcasting(Some(400), None, 2, 2_000_000));
    }
}
