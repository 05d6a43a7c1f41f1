//! How many rows a physical subtree produces, by estimate: what the planner weighs when it
//! chooses between moving a join side into the other's shards, broadcasting it, or keeping a
//! step on the coordinator. Each node's estimate is computed once per optimizer run, from its
//! children's, and kept with the other distribution facts (`DistributeRule::rows`).
//!
//! Scans count the rows the catalog records for their files. Filters keep the share DataFusion
//! derives from the input's column statistics (min and max for ranges, distinct counts for
//! equalities). An inner or outer equi-join produces `|L| · |R| / max(ndv(L keys), ndv(R keys))`
//! rows (never fewer than the side an outer join preserves), where a side's `ndv(keys)` is the
//! product of its key columns' known distinct counts, at most its rows; without any it is
//! assumed to produce as many rows as its larger input
//! (the many side of a key join). DataFusion's own join estimate, without distinct counts,
//! treats every key as unique and so calls `supplier ⋈ lineitem` as small as `supplier`.
//! An aggregate keeps its input's rows unless it has no groups.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec,
};
use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext};
use shardfusion_common::broadcast::BroadcastExec;
use shardfusion_common::shard_scan::ShardScanExec;

use super::distribute_rule::{DistributeRule, address};

/// The share of rows a filter is assumed to keep where the statistics say nothing
/// (DataFusion's default filter selectivity).
const FILTER_SELECTIVITY: f64 = 0.2;

impl DistributeRule {
    /// A rough estimate of how many rows `node` produces (see the module docs), computed once
    /// per node in an optimizer run, from its children's; `None` when a leaf of unknown size
    /// is reached.
    pub(super) fn rows(&self, node: &Arc<dyn ExecutionPlan>) -> Option<usize> {
        if let Some((_, rows)) = self.facts.lock().rows.get(&address(node)) {
            return *rows;
        }
        let rows = node_rows(node, &|child| self.rows(child));
        self.facts
            .lock()
            .rows
            .insert(address(node), (Arc::clone(node), rows));
        rows
    }
}

/// How many rows `plan` produces by estimate, given its children's estimates by `child_rows`.
fn node_rows(
    plan: &Arc<dyn ExecutionPlan>,
    child_rows: &dyn Fn(&Arc<dyn ExecutionPlan>) -> Option<usize>,
) -> Option<usize> {
    if let Some(scan) = plan.downcast_ref::<ShardScanExec>() {
        let rows = scan
            .shards()
            .iter()
            .flat_map(|s| &s.files)
            .map(|f| f.row_count as usize)
            .sum::<usize>();
        return Some(scan.limit().map_or(rows, |l| l.min(rows)));
    }
    if plan.downcast_ref::<BroadcastExec>().is_some() || plan.children().is_empty() {
        return StatisticsContext::new()
            .compute(plan.as_ref(), &StatisticsArgs::new())
            .ok()
            .and_then(|s| s.num_rows.get_value().copied());
    }
    let children: Vec<Option<usize>> = plan.children().into_iter().map(child_rows).collect();
    let rows = if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
        let (left, right) = (children.first().copied()??, children.get(1).copied()??);
        let keys: Vec<(usize, usize)> = join
            .on()
            .iter()
            .filter_map(|(l, r)| Some((column_index(l)?, column_index(r)?)))
            .collect();
        join_rows(
            *join.join_type(),
            join.left(),
            join.right(),
            left,
            right,
            &keys,
        )
    } else if let Some(join_type) = plan
        .downcast_ref::<SortMergeJoinExec>()
        .map(|j| j.join_type())
        .or_else(|| {
            plan.downcast_ref::<NestedLoopJoinExec>()
                .map(|j| *j.join_type())
        })
    {
        let (left, right) = (children.first().copied()??, children.get(1).copied()??);
        let children = plan.children();
        join_rows(join_type, children[0], children[1], left, right, &[])
    } else if plan.downcast_ref::<CrossJoinExec>().is_some() {
        children
            .iter()
            .try_fold(1usize, |acc, c| Some(acc.saturating_mul((*c)?)))?
    } else if let Some(aggregate) = plan.downcast_ref::<AggregateExec>() {
        if aggregate.group_expr().is_empty() {
            1
        } else {
            children.first().copied()??
        }
    } else if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        (children.first().copied()?? as f64 * filter_selectivity(filter)).ceil() as usize
    } else {
        children
            .iter()
            .try_fold(0usize, |acc, c| Some(acc.saturating_add((*c)?)))?
    };
    Some(plan.fetch().map_or(rows, |f| f.min(rows)))
}

/// The rows of a join of `left_rows` and `right_rows` rows on the column pairs `keys`.
fn join_rows(
    join_type: JoinType,
    left: &Arc<dyn ExecutionPlan>,
    right: &Arc<dyn ExecutionPlan>,
    left_rows: usize,
    right_rows: usize,
    keys: &[(usize, usize)],
) -> usize {
    // Each side's distinct key combinations: the product of its keys' distinct counts (those
    // known), never more than its rows.
    let combinations = |plan, rows: usize, side: fn(&(usize, usize)) -> usize| {
        let ndv = distinct_counts(plan);
        let known: Vec<usize> = keys
            .iter()
            .filter_map(|k| ndv.get(side(k)).copied().flatten())
            .collect();
        (!known.is_empty()).then(|| {
            known
                .iter()
                .fold(1usize, |acc, n| acc.saturating_mul(*n))
                .clamp(1, rows.max(1))
        })
    };
    let by_keys = || {
        let left_ndv = combinations(left, left_rows, |k| k.0);
        let right_ndv = combinations(right, right_rows, |k| k.1);
        match left_ndv.into_iter().chain(right_ndv).max() {
            Some(ndv) => ((left_rows as f64) * (right_rows as f64) / ndv as f64).ceil() as usize,
            None => left_rows.max(right_rows),
        }
    };
    match join_type {
        JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => left_rows,
        JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => right_rows,
        JoinType::Inner => by_keys(),
        JoinType::Left => by_keys().max(left_rows),
        JoinType::Right => by_keys().max(right_rows),
        JoinType::Full => by_keys().max(left_rows).max(right_rows),
    }
}

/// Each output column's distinct count by DataFusion's statistics of `plan`, where known.
fn distinct_counts(plan: &Arc<dyn ExecutionPlan>) -> Vec<Option<usize>> {
    StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .map(|s| {
            s.column_statistics
                .iter()
                .map(|c| c.distinct_count.get_value().copied().filter(|&n| n > 0))
                .collect()
        })
        .unwrap_or_default()
}

/// The input column `expr` reads as it is, if it is a plain column.
fn column_index(expr: &Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> Option<usize> {
    expr.downcast_ref::<Column>().map(Column::index)
}

/// The share of its input's rows `filter` keeps, by DataFusion's estimate from the input's
/// column statistics (min and max of a range, distinct counts of an equality), or
/// [`FILTER_SELECTIVITY`] where they say nothing.
fn filter_selectivity(filter: &FilterExec) -> f64 {
    let statistics = StatisticsContext::new();
    let rows = |plan: &dyn ExecutionPlan| {
        statistics
            .compute(plan, &StatisticsArgs::new())
            .ok()
            .and_then(|s| s.num_rows.get_value().copied())
    };
    match (rows(filter), rows(filter.input().as_ref())) {
        (Some(kept), Some(all)) if all > 0 => (kept as f64 / all as f64).clamp(0.0, 1.0),
        _ => FILTER_SELECTIVITY,
    }
}
