//! Shard-aligned moves (Citus's repartition of one join side): when one side of a join that
//! is not co-located reads shards by a distribution column a join key pairs with, the other
//! side's rows go straight into those shards. Deciding it, and what it means for the
//! distribution columns of the join's output.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use shardfusion_common::hashing::{ShardRanges, hash_compatible};
use shardfusion_common::shard_scan::ShardScanExec;

use super::broadcast::JoinSide;

use super::distribute_rule::*;
use super::exchanges::*;

impl DistributeRule {
    /// A join that is not co-located, one of whose sides reads shards by a distribution
    /// column the join key pairs with: the other side's rows can go straight into those shards
    /// (Citus's repartition of one side), routed by the shard their key hashes to. Needs a
    /// key of a hash-compatible type (equal values hash alike) and a moved side that runs on
    /// the workers. When both sides could stay, the smaller (by estimate) moves.
    pub(super) fn aligned_move(
        &self,
        left: &Arc<dyn ExecutionPlan>,
        right: &Arc<dyn ExecutionPlan>,
        on: &[JoinKey],
        join_type: JoinType,
        l: &Option<Layout>,
        r: &Option<Layout>,
    ) -> Option<(Layout, AlignedMove)> {
        let into = |stay: &Arc<dyn ExecutionPlan>,
                    stay_layout: &Option<Layout>,
                    moved: &Arc<dyn ExecutionPlan>,
                    moved_layout: &Option<Layout>,
                    moved_side: JoinSide| {
            let stay_layout = stay_layout
                .as_ref()
                .filter(|s| s.replicated_on.is_none() && !s.shuffled)?;
            moved_layout.as_ref()?;
            let shard_count = self.shard_ranges(stay)?.len();
            // Moved rows go to the shard their key hashes to; a shard the staying side does
            // not read (pruned) is read by no task. Fine for rows that would only match there;
            // not for rows the join must emit unmatched (outer, anti and mark joins).
            let mut read = stay_layout.indexes.clone();
            read.sort_unstable();
            read.dedup();
            if read.len() < shard_count && emits_unmatched(join_type, moved_side) {
                return None;
            }
            let key = on.iter().position(|(left_key, right_key)| {
                let (stay_key, moved_key) = match moved_side {
                    JoinSide::Left => (right_key, left_key),
                    JoinSide::Right => (left_key, right_key),
                };
                column_index(stay_key).is_some_and(|i| self.is_distribution_column(stay, i))
                    && match (
                        stay_key.data_type(stay.schema().as_ref()),
                        moved_key.data_type(moved.schema().as_ref()),
                    ) {
                        (Ok(a), Ok(b)) => hash_compatible(&a, &b),
                        _ => false,
                    }
            })?;
            Some((
                stay_layout.clone(),
                AlignedMove {
                    moved: moved_side,
                    key,
                },
            ))
        };
        let into_left = into(left, l, right, r, JoinSide::Right);
        let into_right = into(right, r, left, l, JoinSide::Left);
        match (into_left, into_right) {
            (Some(into_left), Some(into_right)) => {
                let size = |plan| self.rows(plan).unwrap_or(usize::MAX);
                Some(if size(right) <= size(left) {
                    into_left
                } else {
                    into_right
                })
            }
            (into_left, into_right) => into_left.or(into_right),
        }
    }

    /// How `join` moves one side into the other's shards, if it runs as such a join (see
    /// [`Self::aligned_move`]).
    pub(super) fn aligned_join(&self, join: &HashJoinExec) -> Option<AlignedMove> {
        if join.null_aware || *join.partition_mode() == PartitionMode::Auto {
            return None;
        }
        let (left, right) = (
            through_exchange(join.left()),
            through_exchange(join.right()),
        );
        let (l, r) = (self.layout(left), self.layout(right));
        if let (Some(lo), Some(ro)) = (&l, &r)
            && self
                .colocated_layout(left, right, lo, ro, join.on(), *join.join_type())
                .is_some()
        {
            return None;
        }
        let (_, aligned) = self.aligned_move(left, right, join.on(), *join.join_type(), &l, &r)?;
        let broadcast = self.broadcast_choice(left, right, &l, &r, *join.join_type());
        (!self.broadcast_beats_move(left, right, aligned.moved, broadcast.as_ref()))
            .then_some(aligned)
    }

    /// The hash ranges of the distributed table `plan` reads by shards.
    pub(super) fn shard_ranges(&self, plan: &Arc<dyn ExecutionPlan>) -> Option<ShardRanges> {
        let mut ranges = None;
        let _ = plan.apply(|node| {
            if let Some(scan) = node.downcast_ref::<ShardScanExec>()
                && scan.distribution_column().is_some()
                && scan.replicas().is_empty()
            {
                ranges = self
                    .snapshot
                    .table(scan.table_name())
                    .and_then(|t| t.shard_ranges());
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        ranges
    }

    /// Whether output column `index` (before the join's projection) of a join that moved one
    /// side into the other's shards is a distribution column: on the side that stayed, as
    /// before; on the moved side, only the key its rows were routed by.
    pub(super) fn aligned_join_column(
        &self,
        join: &HashJoinExec,
        aligned: AlignedMove,
        index: usize,
    ) -> bool {
        let left_width = join.left().schema().fields().len();
        let Some((left_key, right_key)) = join.on().get(aligned.key) else {
            return false;
        };
        let from = |side: JoinSide, column: usize| {
            if side == aligned.moved {
                let key = match side {
                    JoinSide::Left => left_key,
                    JoinSide::Right => right_key,
                };
                column_index(key) == Some(column)
            } else {
                let child = match side {
                    JoinSide::Left => join.left(),
                    JoinSide::Right => join.right(),
                };
                self.is_distribution_column(child, column)
            }
        };
        // Columns of a null-extended side are not distribution columns (see
        // `join_side_column`).
        match join.join_type() {
            JoinType::Inner => {
                if index < left_width {
                    from(JoinSide::Left, index)
                } else {
                    from(JoinSide::Right, index - left_width)
                }
            }
            JoinType::Left => index < left_width && from(JoinSide::Left, index),
            JoinType::Right => index >= left_width && from(JoinSide::Right, index - left_width),
            JoinType::Full => false,
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                index < left_width && from(JoinSide::Left, index)
            }
            JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                from(JoinSide::Right, index)
            }
        }
    }
}
