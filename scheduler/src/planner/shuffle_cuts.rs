//! Cutting the parts of a stage that move between workers out into producer stages: both
//! sides of a hash shuffle join, the moved side of a shard-aligned join, the input of a
//! repartitioned aggregate or window. Each becomes a `DistributedExec` read through a
//! `ShuffleReadExec` placeholder.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use shardfusion_common::exchange::shard_index::without_shard_column;
use shardfusion_common::exchange::shuffle_read::ShuffleReadExec;

use super::broadcast::JoinSide;
use super::existence_sides::shipped_rows;

use super::distribute_rule::*;
use super::exchanges::*;
use super::stage_output::*;

impl DistributeRule {
    /// Cuts the sides of every shuffle join in `fragment` (not looking into the sides
    /// themselves) into producer stages, each hash-repartitioned by its join keys into
    /// `consumers` × `per_task` partitions; the join reads them through `ShuffleReadExec`
    /// placeholders. `None` if a side cannot be sent to the workers.
    pub(super) fn cut_shuffles(
        &self,
        fragment: Arc<dyn ExecutionPlan>,
        consumers: usize,
        per_task: usize,
        partitions: usize,
    ) -> Result<Option<CutFragment>> {
        let total = consumers.max(1) * per_task;
        let mut producers: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let mut unshippable = false;
        let cut = fragment
            .transform_down(|node| {
                if unshippable {
                    return Ok(Transformed::no(node));
                }
                if is_window(&node) && self.repartitioned_window(&node) {
                    let Some((sort, below, keys)) = window_exchange(&node) else {
                        return internal_err!("a repartitioned window lost its exchange");
                    };
                    let Some(read) = self.hash_shuffle(
                        below,
                        keys,
                        total,
                        per_task,
                        partitions,
                        &mut producers,
                    )?
                    else {
                        unshippable = true;
                        return Ok(Transformed::new(node, false, TreeNodeRecursion::Stop));
                    };
                    let input = match sort {
                        Some(sort) => replace_children_if_necessary(Arc::clone(sort), vec![read])?,
                        None => read,
                    };
                    let windowed = replace_children_if_necessary(Arc::clone(&node), vec![input])?;
                    return Ok(Transformed::new(windowed, true, TreeNodeRecursion::Jump));
                }
                if let Some(aggregate) = node.downcast_ref::<AggregateExec>()
                    && self.repartitioned_aggregate(aggregate)
                {
                    let exchange = aggregate.input();
                    let (Some(partial), Some(keys)) = (
                        below_join_exchange_hash(exchange),
                        exchange_hash_keys(exchange),
                    ) else {
                        return internal_err!("a repartitioned aggregate lost its exchange");
                    };
                    let Some(read) = self.hash_shuffle(
                        partial,
                        keys,
                        total,
                        per_task,
                        partitions,
                        &mut producers,
                    )?
                    else {
                        unshippable = true;
                        return Ok(Transformed::new(node, false, TreeNodeRecursion::Stop));
                    };
                    let finalized = replace_children_if_necessary(Arc::clone(&node), vec![read])?;
                    return Ok(Transformed::new(finalized, true, TreeNodeRecursion::Jump));
                }
                let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                    return Ok(Transformed::no(node));
                };
                if let Some(aligned) = self.aligned_join(join) {
                    return match self.cut_aligned(join, aligned, partitions, &mut producers)? {
                        Some(cut) => Ok(Transformed::yes(cut)),
                        None => {
                            unshippable = true;
                            Ok(Transformed::new(node, false, TreeNodeRecursion::Stop))
                        }
                    };
                }
                if !self.is_shuffle_join(join) {
                    return Ok(Transformed::no(node));
                }
                let sides = [
                    (
                        Arc::clone(join.left()),
                        join.on()
                            .iter()
                            .map(|(l, _)| Arc::clone(l))
                            .collect::<Vec<_>>(),
                    ),
                    (
                        Arc::clone(join.right()),
                        join.on().iter().map(|(_, r)| Arc::clone(r)).collect(),
                    ),
                ];
                let mut reads: Vec<Arc<dyn ExecutionPlan>> = Vec::with_capacity(2);
                for ((side, keys), which) in
                    sides.into_iter().zip([JoinSide::Left, JoinSide::Right])
                {
                    let input = shipped_rows(join, which, below_join_exchange(&side))?;
                    match self.hash_shuffle(
                        &input,
                        keys,
                        total,
                        per_task,
                        partitions,
                        &mut producers,
                    )? {
                        Some(read) => reads.push(read),
                        None => {
                            unshippable = true;
                            return Ok(Transformed::new(node, false, TreeNodeRecursion::Stop));
                        }
                    }
                }
                let joined = join
                    .builder()
                    .with_partition_mode(PartitionMode::Partitioned)
                    .with_new_children(reads)?
                    .build_exec()?;
                Ok(Transformed::new(joined, true, TreeNodeRecursion::Jump))
            })?
            .data;
        Ok((!unshippable).then_some((cut, producers)))
    }

    /// Plans `input` as a producer stage hash-repartitioned by `keys` into `total`
    /// partitions (pushed onto `producers`) and returns the placeholder that reads it,
    /// `per_task` partitions per consumer task; `None` if `input` cannot be sent to the
    /// workers.
    pub(super) fn hash_shuffle(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        total: usize,
        per_task: usize,
        partitions: usize,
        producers: &mut Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(layout) = self.layout(input) else {
            return internal_err!("a shuffled input cannot run on the workers");
        };
        let output = StageOutput::Hash(Partitioning::Hash(keys.clone(), total));
        let Some(stage) = self.build_stage(Arc::clone(input), &layout, partitions, Some(output))?
        else {
            return Ok(None);
        };
        producers.push(Arc::new(stage));
        Ok(Some(Arc::new(ShuffleReadExec::placeholder(
            producers.len() - 1,
            input.schema(),
            keys,
            per_task,
        ))))
    }

    /// `join` with its moved side replaced by a shard-aligned shuffle read, the moved side
    /// planned as a producer stage (pushed onto `producers`); `None` if that side cannot be
    /// sent to the workers.
    pub(super) fn cut_aligned(
        &self,
        join: &HashJoinExec,
        aligned: AlignedMove,
        partitions: usize,
        producers: &mut Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let (moved_side, stay_side) = match aligned.moved {
            JoinSide::Left => (join.left(), join.right()),
            JoinSide::Right => (join.right(), join.left()),
        };
        let (input, stay) = (through_exchange(moved_side), through_exchange(stay_side));
        let (Some(layout), Some(stay_layout), Some(ranges)) = (
            self.layout(input),
            self.layout(stay),
            self.shard_ranges(stay),
        ) else {
            return internal_err!("a join side moved into shards lost its layout");
        };
        let Some((left_key, right_key)) = join.on().get(aligned.key) else {
            return internal_err!("a join side moved into shards lost its key");
        };
        let key = match aligned.moved {
            JoinSide::Left => Arc::clone(left_key),
            JoinSide::Right => Arc::clone(right_key),
        };
        let mut wanted = stay_layout.indexes.clone();
        wanted.sort_unstable();
        wanted.dedup();
        let output = StageOutput::IntoShards {
            key: Arc::clone(&key),
            wanted: (wanted.len() < ranges.len()).then_some(wanted),
            ranges,
        };
        let shipped = shipped_rows(join, aligned.moved, input)?;
        let Some(stage) = self.build_stage(shipped, &layout, partitions, Some(output))? else {
            return Ok(None);
        };
        let schema = stage.schema();
        producers.push(Arc::new(stage));
        let key_column = column_index(&key).unwrap_or(input.schema().fields().len());
        let read = ShuffleReadExec::shard_aligned(
            producers.len() - 1,
            schema,
            key_column,
            stay_layout.indexes.len(),
        );
        let visible = without_shard_column(Arc::new(read))?;
        let new_side = if Arc::ptr_eq(moved_side, input) {
            visible
        } else {
            replace_children_if_necessary(Arc::clone(moved_side), vec![visible])?
        };
        let children = match aligned.moved {
            JoinSide::Left => vec![new_side, Arc::clone(join.right())],
            JoinSide::Right => vec![Arc::clone(join.left()), new_side],
        };
        Ok(Some(
            join.builder().with_new_children(children)?.build_exec()?,
        ))
    }

    /// The hash joins (by address) in what `fragment`'s shuffles send: both sides of a shuffle
    /// join, the moved side of a shard-aligned one, a repartitioned aggregate's input.
    pub(super) fn joins_inside_shuffles(
        &self,
        fragment: &Arc<dyn ExecutionPlan>,
    ) -> HashSet<usize> {
        let mut inside = HashSet::new();
        let _ = fragment.apply(|node| {
            let moved_input = if let Some(aggregate) = node.downcast_ref::<AggregateExec>()
                && self.repartitioned_aggregate(aggregate)
            {
                Some(aggregate.input())
            } else if is_window(node) && self.repartitioned_window(node) {
                node.children().first().copied()
            } else {
                None
            };
            if let Some(input) = moved_input {
                let _ = input.apply(|below| {
                    if let Some(inner) = below.downcast_ref::<HashJoinExec>() {
                        inside.insert(inner as *const HashJoinExec as usize);
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
                return Ok(TreeNodeRecursion::Jump);
            }
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(TreeNodeRecursion::Continue);
            };
            let moved: Vec<&Arc<dyn ExecutionPlan>> = if let Some(aligned) = self.aligned_join(join)
            {
                match aligned.moved {
                    JoinSide::Left => vec![join.left()],
                    JoinSide::Right => vec![join.right()],
                }
            } else if self.is_shuffle_join(join) {
                vec![join.left(), join.right()]
            } else {
                return Ok(TreeNodeRecursion::Continue);
            };
            for side in moved {
                let _ = side.apply(|below| {
                    if let Some(inner) = below.downcast_ref::<HashJoinExec>() {
                        inside.insert(inner as *const HashJoinExec as usize);
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
            }
            Ok(TreeNodeRecursion::Continue)
        });
        inside
    }
}
