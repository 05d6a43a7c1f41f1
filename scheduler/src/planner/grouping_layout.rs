//! Where aggregates and window functions run: whole on the workers when every group or
//! window partition lies in one shard group, finalized on the workers after a shuffle by their
//! keys when there are many groups (or any window partitioning), else partial on the workers
//! and final on the coordinator.

use std::sync::Arc;

use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext};

use super::exchanges::*;

use super::distribute_rule::{DistributeRule, Layout, REPARTITION_MIN_GROUPS};

impl DistributeRule {
    pub(super) fn aggregate_layout(
        &self,
        aggregate: &AggregateExec,
        child: &Arc<dyn ExecutionPlan>,
    ) -> Option<Layout> {
        match aggregate.mode() {
            AggregateMode::Partial => self.layout(child),
            AggregateMode::Final | AggregateMode::FinalPartitioned => {
                let partial = if is_exchange(child) {
                    child.children().first().copied()?
                } else {
                    child
                };
                let partial_aggregate = partial.downcast_ref::<AggregateExec>()?;
                if *partial_aggregate.mode() != AggregateMode::Partial {
                    return None;
                }
                let layout = self.layout(partial)?;
                if self.complete_per_shard(aggregate, partial, &layout) {
                    return Some(layout);
                }
                self.repartitioned_aggregate(aggregate)
                    .then(|| Layout::shuffle_over(&[&layout]))
            }
            _ => {
                let layout = self.layout(child)?;
                self.complete_per_shard(aggregate, child, &layout)
                    .then_some(layout)
            }
        }
    }

    /// Whether `aggregate` (a final aggregate whose groups are not complete per shard) is
    /// finalized on the workers after a shuffle by its group keys: its partial aggregate runs
    /// on the workers, there is one grouping set, and there are many groups (by DataFusion's
    /// estimate from column statistics, else the partial aggregate's input rows), so the
    /// coordinator would otherwise merge every worker's states of every group.
    pub(super) fn repartitioned_aggregate(&self, aggregate: &AggregateExec) -> bool {
        if *aggregate.mode() != AggregateMode::FinalPartitioned
            || !aggregate.group_expr().is_single()
            || aggregate.group_expr().expr().is_empty()
        {
            return false;
        }
        let Some(partial) = below_join_exchange_hash(aggregate.input()) else {
            return false;
        };
        let Some(partial_aggregate) = partial.downcast_ref::<AggregateExec>() else {
            return false;
        };
        if *partial_aggregate.mode() != AggregateMode::Partial {
            return false;
        }
        let Some(layout) = self.layout(partial) else {
            return false;
        };
        if layout.single_shard() || self.complete_per_shard(aggregate, partial, &layout) {
            return false;
        }
        let groups = StatisticsContext::new()
            .compute(partial.as_ref(), &StatisticsArgs::new())
            .ok()
            .and_then(|s| s.num_rows.get_value().copied())
            .or_else(|| self.rows(partial_aggregate.input()));
        groups.is_some_and(|g| g >= REPARTITION_MIN_GROUPS)
    }

    /// The layout of a window function partitioned by some keys (DataFusion feeds it a hash
    /// exchange by those keys, then a per-partition sort): where its input runs on the
    /// workers, every window partition is complete in one shard group when a key is a
    /// distribution column, and otherwise after a shuffle by the keys.
    pub(super) fn window_layout(&self, window: &Arc<dyn ExecutionPlan>) -> Option<Layout> {
        let (_, below, _) = window_exchange(window)?;
        let layout = self.layout(below)?;
        if layout.single_shard() || self.window_complete_per_shard(window) {
            return Some(layout);
        }
        Some(Layout::shuffle_over(&[&layout]))
    }

    /// Whether a window's partitions each lie in one shard group: a partition key is a
    /// distribution column of its input.
    pub(super) fn window_complete_per_shard(&self, window: &Arc<dyn ExecutionPlan>) -> bool {
        let Some((_, below, keys)) = window_exchange(window) else {
            return false;
        };
        keys.iter()
            .any(|k| column_index(k).is_some_and(|i| self.is_distribution_column(below, i)))
    }

    /// Whether `window` runs on the workers after a shuffle by its partition keys.
    pub(super) fn repartitioned_window(&self, window: &Arc<dyn ExecutionPlan>) -> bool {
        window_exchange(window).is_some_and(|(_, below, _)| {
            self.layout(below).is_some_and(|l| !l.single_shard())
                && !self.window_complete_per_shard(window)
        })
    }

    /// Whether every group of `aggregate` (over `input`) lies within one shard group.
    pub(super) fn complete_per_shard(
        &self,
        aggregate: &AggregateExec,
        input: &Arc<dyn ExecutionPlan>,
        layout: &Layout,
    ) -> bool {
        if layout.single_shard() {
            return true;
        }
        let group_by = aggregate.group_expr();
        group_by.is_single()
            && group_by.expr().iter().any(|(expr, _)| {
                column_index(expr).is_some_and(|i| self.is_distribution_column(input, i))
            })
    }
}
