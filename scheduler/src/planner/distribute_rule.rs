//! [`DistributeRule`]: cuts the physical plan into coordinator work and worker fragments.
//!
//! Walking down from the root, the first node that heads a subtree able to run shard group
//! by shard group over worker-side `ShardScanExec`s becomes a fragment. A subtree qualifies
//! when it contains no scalar subquery and is built from:
//! - `FilterExec`, `ProjectionExec`, `CoalesceBatchesExec`, `CooperativeExec`,
//!   `LocalLimitExec`, and sorts that keep their partitions (per partition = per shard; the
//!   coordinator's merge or global limit finishes the job);
//! - `AggregateExec` in `Partial` mode (the coordinator's `Final` merges the states);
//! - a whole aggregate (`Final`/`FinalPartitioned` over its exchange and `Partial`, or
//!   `Single`) when it is complete per shard: its only grouping set contains a distribution
//!   column, so every group lives in one shard group (HAVING and what follows come along);
//! - a hash or sort-merge join of two qualifying sides that are co-located: their scans list
//!   the same shard indexes on the same workers and a join key pair is the distribution column
//!   on both sides (Citus's co-located join), or both sides read one shard on the same worker;
//! - a join of a distributed side with a reference-table side that every one of its workers
//!   holds, when the distributed side drives the join (inner, or its rows are the preserved or
//!   probing ones): each worker reads its own copy of the reference table;
//! - anything with one input when the scans read a single shard (Citus's router case).
//!
//! Inside a fragment the plan runs as DataFusion planned it, except that round-robin
//! repartitions are dropped (each shard is already a partition). Exchanges inside a fragment
//! stay: they shuffle between the worker's own partitions, and every group or join match is
//! on that worker. If the replaced subtree promised its parent a
//! partitioning (one partition, or a hash partitioning a partitioned join relies on), the
//! coordinator restores it, order-preserving when the streams are sorted.
//!
//! The scans' own partitioning is never declared as hash partitioning: shards are split by
//! xxh3, not by DataFusion's hash.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, Result};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, UnKnownColumn};
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, SortMergeJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_common::ids::{NodeId, ShardId};
use shardfusion_common::shard_scan::ShardScanExec;

use super::broadcast::{JoinSide, cut_broadcasts, drives_join, worth_broadcasting};
use super::partial_reduce::reduce_per_worker;
use super::partition_wise::drop_shard_exchanges;
use crate::cluster::worker_pool::WorkerPool;
use crate::exec::distributed_exec::{DistributedExec, WorkerTask};
use crate::monitoring::statement_stats::QueryCounters;

/// One equality of a join condition.
type JoinKey = (Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>);

/// Where the shard groups of a qualifying subtree are: position `i` of every scan in it is
/// shard index `indexes[i]` of its table, held by `nodes[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    indexes: Vec<usize>,
    nodes: Vec<NodeId>,
    shard_ids: Vec<ShardId>,
    /// For subtrees over reference tables only: the workers that hold all of their data.
    replicated_on: Option<Vec<NodeId>>,
}

impl Layout {
    fn single_shard(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// How many distinct workers run the shard groups.
    fn worker_count(&self) -> usize {
        let mut nodes = self.nodes.clone();
        nodes.sort();
        nodes.dedup();
        nodes.len()
    }

    fn same_groups(&self, other: &Layout) -> bool {
        self.indexes == other.indexes && self.nodes == other.nodes
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct DistributeRule {
    snapshot: Arc<CatalogSnapshot>,
    workers: Arc<WorkerPool>,
    counters: Arc<QueryCounters>,
    /// Every shard's index within its table.
    shard_index: HashMap<ShardId, usize>,
}

impl DistributeRule {
    pub fn new(
        snapshot: Arc<CatalogSnapshot>,
        workers: Arc<WorkerPool>,
        counters: Arc<QueryCounters>,
    ) -> Self {
        let shard_index = snapshot
            .tables
            .values()
            .flat_map(|t| t.shards.iter().map(|s| (s.shard_id, s.index)))
            .collect();
        Self {
            snapshot,
            workers,
            counters,
            shard_index,
        }
    }

    fn scan_layout(&self, scan: &ShardScanExec) -> Option<Layout> {
        if scan.shards().iter().any(|s| s.node_id == NodeId(0)) {
            return None;
        }
        let replicated_on = (!scan.replicas().is_empty())
            .then(|| scan.replicas().iter().map(|r| r.node_id).collect());
        let mut layout = Layout {
            indexes: Vec::new(),
            nodes: Vec::new(),
            shard_ids: Vec::new(),
            replicated_on,
        };
        for shard in scan.shards() {
            layout.indexes.push(*self.shard_index.get(&shard.shard_id)?);
            layout.nodes.push(shard.node_id);
            layout.shard_ids.push(shard.shard_id);
        }
        Some(layout)
    }

    /// If `node` heads a subtree that can run shard group by shard group, its layout.
    fn layout(&self, node: &Arc<dyn ExecutionPlan>) -> Option<Layout> {
        if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
            return self.scan_layout(scan);
        }
        if !shippable_expressions(node)
            || matches!(
                node.name(),
                "DistributedExec" | "AnalyzeExec" | "ScalarSubqueryExec"
            )
            || node.name().contains("Sink")
        {
            return None;
        }
        if let Some(join) = node.downcast_ref::<HashJoinExec>() {
            return self
                .join_layout(
                    join.left(),
                    join.right(),
                    join.on(),
                    *join.join_type(),
                    true,
                )
                .map(|(layout, _)| layout);
        }
        if let Some(join) = node.downcast_ref::<SortMergeJoinExec>() {
            return self
                .join_layout(
                    join.left(),
                    join.right(),
                    join.on(),
                    join.join_type(),
                    false,
                )
                .map(|(layout, _)| layout);
        }
        let children = node.children();
        let [child] = children.as_slice() else {
            return None;
        };
        if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
            return self.aggregate_layout(aggregate, child);
        }
        let layout = self.layout(child)?;
        // Sorts are matched by type: their name changes with a fetch ("SortExec(TopK)").
        let per_shard = match node.downcast_ref::<SortExec>() {
            Some(sort) => sort.preserve_partitioning(),
            None => match node.name() {
                "FilterExec"
                | "ProjectionExec"
                | "CoalesceBatchesExec"
                | "CooperativeExec"
                | "LocalLimitExec" => true,
                "RepartitionExec" => is_round_robin(node),
                _ => false,
            },
        };
        (per_shard || layout.single_shard()).then_some(layout)
    }

    fn aggregate_layout(
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
                self.complete_per_shard(aggregate, partial, &layout)
                    .then_some(layout)
            }
            _ => {
                let layout = self.layout(child)?;
                self.complete_per_shard(aggregate, child, &layout)
                    .then_some(layout)
            }
        }
    }

    /// The layout of a join, and which side (if any) is broadcast to the other side's workers.
    fn join_layout(
        &self,
        left: &Arc<dyn ExecutionPlan>,
        right: &Arc<dyn ExecutionPlan>,
        on: &[JoinKey],
        join_type: JoinType,
        can_broadcast: bool,
    ) -> Option<(Layout, Option<JoinSide>)> {
        let (left, right) = (through_exchange(left), through_exchange(right));
        let (l, r) = (self.layout(left), self.layout(right));
        if let (Some(l), Some(r)) = (&l, &r)
            && let Some(layout) = self.colocated_layout(left, right, l, r, on, join_type)
        {
            return Some((layout, None));
        }
        if !can_broadcast {
            return None;
        }
        // Not co-located: send the small side to the workers of the other one.
        let broadcast = |driver: &Option<Layout>, driver_plan, small, small_side| {
            let driver = driver.as_ref().filter(|d| d.replicated_on.is_none())?;
            let driver_side = match small_side {
                JoinSide::Left => JoinSide::Right,
                JoinSide::Right => JoinSide::Left,
            };
            (drives_join(join_type, driver_side)
                && worth_broadcasting(small, driver_plan, driver.worker_count()))
            .then(|| (driver.clone(), Some(small_side)))
        };
        broadcast(&l, left, right, JoinSide::Right)
            .or_else(|| broadcast(&r, right, left, JoinSide::Left))
    }

    /// The layout of a join whose two sides run on the workers without moving rows: Citus's
    /// co-located joins, reference-table joins, and joins within one shard.
    fn colocated_layout(
        &self,
        left: &Arc<dyn ExecutionPlan>,
        right: &Arc<dyn ExecutionPlan>,
        l: &Layout,
        r: &Layout,
        on: &[JoinKey],
        join_type: JoinType,
    ) -> Option<Layout> {
        match (&l.replicated_on, &r.replicated_on) {
            // Reference tables on both sides: wherever both have copies.
            (Some(a), Some(b)) => {
                let common: Vec<NodeId> = a.iter().filter(|n| b.contains(n)).copied().collect();
                let ok = l.nodes == r.nodes && !common.is_empty();
                return ok.then(|| Layout {
                    replicated_on: Some(common),
                    ..l.clone()
                });
            }
            // A distributed side joined with a reference table every one of its workers holds:
            // each worker joins its shards with its own copy, if the distributed side drives
            // the join (otherwise reference rows would be produced once per worker).
            (None, Some(copies)) => {
                return (l.nodes.iter().all(|n| copies.contains(n))
                    && drives_join(join_type, JoinSide::Left))
                .then(|| l.clone());
            }
            (Some(copies), None) => {
                return (r.nodes.iter().all(|n| copies.contains(n))
                    && drives_join(join_type, JoinSide::Right))
                .then(|| r.clone());
            }
            (None, None) => {}
        }
        if l.single_shard() && r.single_shard() && l.nodes == r.nodes {
            return Some(l.clone());
        }
        let keyed = on.iter().any(|(a, b)| {
            column_index(a).is_some_and(|i| self.is_distribution_column(left, i))
                && column_index(b).is_some_and(|i| self.is_distribution_column(right, i))
        });
        (keyed && l.same_groups(r)).then(|| l.clone())
    }

    /// The side of `join` that is broadcast, if it runs on the workers as a broadcast join.
    fn broadcast_side(&self, join: &HashJoinExec) -> Option<JoinSide> {
        self.join_layout(
            join.left(),
            join.right(),
            join.on(),
            *join.join_type(),
            true,
        )
        .and_then(|(_, side)| side)
    }

    /// Replaces `subtree` by a `DistributedExec`, or returns `None` if its fragment cannot be
    /// sent to a worker (then a lower cut is tried).
    fn distribute(
        &self,
        subtree: Arc<dyn ExecutionPlan>,
        layout: &Layout,
        partitions: usize,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let promised = subtree.output_partitioning().clone();
        let ordering = subtree.output_ordering().cloned();
        let (fragment, broadcasts) =
            cut_broadcasts(Arc::clone(&subtree), |join| self.broadcast_side(join))?;
        let fragment = fragment
            .transform_up(|node| {
                if is_round_robin(&node) {
                    return Ok(Transformed::yes(Arc::clone(node.children()[0])));
                }
                Ok(Transformed::no(node))
            })?
            .data;
        let shipped = reduce_per_worker(
            drop_shard_exchanges(Arc::clone(&fragment), &|plan, index| {
                self.is_distribution_column(plan, index)
            })?,
            partitions,
        )?;
        let fragment = reduce_per_worker(fragment, partitions)?;
        if let Err(e) = shardfusion_common::codec::encode_plan(Arc::clone(&shipped)) {
            tracing::debug!("keeping {} on the coordinator: {e}", subtree.name());
            return Ok(None);
        }
        let mut by_node: BTreeMap<NodeId, (Vec<usize>, Vec<ShardId>)> = BTreeMap::new();
        for (position, (node, shard)) in layout.nodes.iter().zip(&layout.shard_ids).enumerate() {
            let entry = by_node.entry(*node).or_default();
            entry.0.push(position);
            entry.1.push(*shard);
        }
        let tasks: Vec<WorkerTask> = by_node
            .into_iter()
            .map(|(node_id, (positions, shard_ids))| {
                let (url, label) = match self.snapshot.node(node_id) {
                    Some(node) => (node.url(), format!("{}:{}", node.node_name, node.node_port)),
                    None => (String::new(), format!("node {node_id}")),
                };
                WorkerTask {
                    node_id,
                    url,
                    label,
                    positions,
                    shard_ids,
                }
            })
            .collect();
        let task_count = tasks.len().max(1);
        let broadcasts = broadcasts
            .into_iter()
            .map(|input| self.distribute_plan(input, partitions))
            .collect::<Result<Vec<_>>>()?;
        let distributed: Arc<dyn ExecutionPlan> = Arc::new(
            DistributedExec::new(
                fragment,
                broadcasts,
                tasks,
                Arc::clone(&self.workers),
                Arc::clone(&self.counters),
            )
            .shipping(shipped),
        );
        // Keep what the parent was promised.
        Ok(Some(match promised {
            // A partitioning on projected-away columns promises nothing a parent can use.
            Partitioning::Hash(exprs, n) if exprs.iter().all(|e| !mentions_unknown_column(e)) => {
                let repartition =
                    RepartitionExec::try_new(distributed, Partitioning::Hash(exprs, n))?;
                // Sorted streams must stay sorted for the merge above.
                match ordering {
                    Some(_) => Arc::new(repartition.with_preserve_order()),
                    None => Arc::new(repartition),
                }
            }
            p if p.partition_count() == 1 && task_count > 1 => match ordering {
                Some(ordering) => Arc::new(SortPreservingMergeExec::new(ordering, distributed)),
                None => Arc::new(CoalescePartitionsExec::new(distributed)),
            },
            _ => distributed,
        }))
    }
}

fn mentions_unknown_column(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.exists(|e| Ok(e.is::<UnKnownColumn>())).unwrap_or(true)
}

fn column_index(expr: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    expr.downcast_ref::<Column>().map(Column::index)
}

fn is_round_robin(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<RepartitionExec>()
        .is_some_and(|r| matches!(r.partitioning(), Partitioning::RoundRobinBatch(_)))
}

/// An exchange between the two phases of an aggregate, or under a join.
pub(super) fn is_exchange(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<CoalescePartitionsExec>().is_some()
        || node
            .downcast_ref::<RepartitionExec>()
            .is_some_and(|r| matches!(r.partitioning(), Partitioning::Hash(_, _)))
}

fn through_exchange(node: &Arc<dyn ExecutionPlan>) -> &Arc<dyn ExecutionPlan> {
    if is_exchange(node) {
        node.children().first().copied().unwrap_or(node)
    } else {
        node
    }
}

/// Whether every expression of `node` can be sent on its own. A scalar subquery's result
/// lives in the surrounding `ScalarSubqueryExec` on the coordinator, so a node that reads one
/// stays there.
fn shippable_expressions(node: &Arc<dyn ExecutionPlan>) -> bool {
    let mut shippable = true;
    let _ = node.apply_expressions(&mut |expr| {
        expr.apply(|e| {
            if e.is::<ScalarSubqueryExpr>() {
                shippable = false;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    shippable
}

impl PhysicalOptimizerRule for DistributeRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.distribute_plan(plan, config.execution.target_partitions)
    }

    fn name(&self) -> &str {
        "shardfusion_distribute"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

impl DistributeRule {
    /// Whether every group of `aggregate` (over `input`) lies within one shard group.
    fn complete_per_shard(
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

    /// Whether output column `index` of `node` is, unchanged, the distribution column of the
    /// table a scan below reads.
    fn is_distribution_column(&self, node: &Arc<dyn ExecutionPlan>, index: usize) -> bool {
        if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
            return scan.distribution_column().is_some()
                && scan.table_column(index) == scan.distribution_column();
        }
        let Some(child) = node.children().first().copied() else {
            return false;
        };
        if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
            return projection
                .expr()
                .get(index)
                .and_then(|p| column_index(&p.expr))
                .is_some_and(|i| self.is_distribution_column(child, i));
        }
        if let Some(filter) = node.downcast_ref::<FilterExec>() {
            let index = match filter.projection() {
                Some(projection) => match projection.get(index) {
                    Some(i) => *i,
                    None => return false,
                },
                None => index,
            };
            return self.is_distribution_column(child, index);
        }
        if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
            return aggregate
                .group_expr()
                .expr()
                .get(index)
                .and_then(|(e, _)| column_index(e))
                .is_some_and(|i| self.is_distribution_column(child, i));
        }
        if let Some(join) = node.downcast_ref::<HashJoinExec>() {
            let index = match &join.projection {
                Some(projection) => match projection.get(index) {
                    Some(i) => *i,
                    None => return false,
                },
                None => index,
            };
            let broadcast = self.broadcast_side(join);
            return self.join_side_column(
                broadcast,
                join.left(),
                join.right(),
                *join.join_type(),
                index,
            );
        }
        if let Some(join) = node.downcast_ref::<SortMergeJoinExec>() {
            return self.join_side_column(None, join.left(), join.right(), join.join_type(), index);
        }
        if node.downcast_ref::<SortExec>().is_some() {
            return self.is_distribution_column(child, index);
        }
        match node.name() {
            "CoalesceBatchesExec"
            | "CooperativeExec"
            | "LocalLimitExec"
            | "GlobalLimitExec"
            | "RepartitionExec"
            | "CoalescePartitionsExec"
            | "SortPreservingMergeExec" => self.is_distribution_column(child, index),
            _ => false,
        }
    }

    /// Follows a join's output column to the side it comes from (before any join projection).
    fn join_side_column(
        &self,
        broadcast: Option<JoinSide>,
        left: &Arc<dyn ExecutionPlan>,
        right: &Arc<dyn ExecutionPlan>,
        join_type: JoinType,
        index: usize,
    ) -> bool {
        let left_width = left.schema().fields().len();
        // Rows of a broadcast side are on every worker: its columns say nothing about shards.
        let from_left =
            |index| broadcast != Some(JoinSide::Left) && self.is_distribution_column(left, index);
        let from_right =
            |index| broadcast != Some(JoinSide::Right) && self.is_distribution_column(right, index);
        match join_type {
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
                if index < left_width {
                    from_left(index)
                } else {
                    from_right(index - left_width)
                }
            }
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                index < left_width && from_left(index)
            }
            JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => from_right(index),
        }
    }

    /// Cuts `plan` top-down: the highest node heading a subtree that can run on the workers
    /// becomes a `DistributedExec`.
    /// `partitions` is how many partitions a worker-side exchange should produce.
    fn distribute_plan(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        partitions: usize,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(layout) = self.layout(&node) else {
                return Ok(Transformed::no(node));
            };
            match self.distribute(Arc::clone(&node), &layout, partitions)? {
                Some(distributed) => {
                    Ok(Transformed::new(distributed, true, TreeNodeRecursion::Jump))
                }
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }
}
