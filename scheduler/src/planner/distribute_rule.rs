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

use parking_lot::Mutex;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, Result};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_common::exchange::shard_index::shard_aligned_output;
use shardfusion_common::exchange::shuffle_read::{ShuffleKind, ShuffleReadExec};
use shardfusion_common::exchange::transport::Transport;
use shardfusion_common::ids::{NodeId, ShardId};
use shardfusion_common::shard_scan::ShardScanExec;

use super::broadcast::{JoinSide, cut_broadcasts, drives_join};
use super::exchanges::*;
use super::operators::{is_per_partition, passes_columns_through, stays_on_coordinator};
use super::partial_reduce::reduce_per_worker;
use super::partition_wise::drop_shard_exchanges;
use super::planner_options::PlannerOptions;
use super::repair::*;
pub(super) use super::shard_layout::Layout;
use super::stage_output::*;
use crate::cluster::worker_pool::WorkerPool;
use crate::exec::distributed_exec::{DistributedExec, WorkerTask};
use crate::exec::shard_partitioned::without_markers;
use crate::monitoring::statement_stats::QueryCounters;

/// A shard's index within its table, and its hash range.
pub(super) type ShardSlot = (usize, Option<(i32, i32)>);

/// One equality of a join condition.
pub(super) type JoinKey = (Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>);

/// Estimated groups from which a GROUP BY that is not complete per shard is finalized on the
/// workers (after a shuffle by its keys) rather than on the coordinator.
pub(super) const REPARTITION_MIN_GROUPS: usize = 100;

/// A join that sends one side's rows into the other side's shards: which side moves, and
/// which pair of the join's keys routes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AlignedMove {
    pub(super) moved: JoinSide,
    pub(super) key: usize,
}

/// A fragment with its shuffled sides cut out, and the producer stages that feed them.
pub(super) type CutFragment = (Arc<dyn ExecutionPlan>, Vec<Arc<dyn ExecutionPlan>>);

impl StageOutput {
    /// `plan` ending in this routing.
    pub(super) fn route(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        match self {
            StageOutput::Hash(partitioning) => Ok(Arc::new(RepartitionExec::try_new(
                plan,
                partitioning.clone(),
            )?)),
            StageOutput::IntoShards {
                key,
                ranges,
                wanted,
            } => shard_aligned_output(plan, Arc::clone(key), ranges, wanted.as_deref()),
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct DistributeRule {
    pub(super) snapshot: Arc<CatalogSnapshot>,
    pub(super) workers: Arc<WorkerPool>,
    pub(super) transport: Arc<dyn Transport>,
    /// What the statement being planned counts its transfers in (see
    /// [`super::statement_counters`]); set for each run.
    pub(super) counters: Arc<QueryCounters>,
    /// Every shard's index within its table, and its hash range.
    pub(super) shard_index: Arc<HashMap<ShardId, ShardSlot>>,
    /// The distribution facts of every node seen in this run, computed once (bottom-up, as
    /// each node's facts are built from its children's).
    pub(super) facts: Mutex<Facts>,
    /// The settings of the current run, read from the session's configuration.
    pub(super) options: Mutex<PlannerOptions>,
}

/// Per-node results, keyed by the node's address; each entry keeps its node alive, so an
/// address is never reused for another node while the cache holds it. Each optimizer run
/// starts with empty facts of its own (`DistributeRule::for_run`).
#[derive(Debug, Default)]
pub(super) struct Facts {
    pub(super) layouts: HashMap<usize, (Arc<dyn ExecutionPlan>, Option<Layout>)>,
    pub(super) distribution_columns: HashMap<(usize, usize), (Arc<dyn ExecutionPlan>, bool)>,
    /// Estimated rows (`row_estimates`).
    pub(super) rows: HashMap<usize, (Arc<dyn ExecutionPlan>, Option<usize>)>,
}

pub(super) fn address(node: &Arc<dyn ExecutionPlan>) -> usize {
    Arc::as_ptr(node) as *const () as usize
}

impl DistributeRule {
    /// The rule's name among a session's physical optimizer rules.
    pub const NAME: &str = "shardfusion_distribute";

    pub fn new(
        snapshot: Arc<CatalogSnapshot>,
        workers: Arc<WorkerPool>,
        transport: Arc<dyn Transport>,
    ) -> Self {
        let shard_index = snapshot
            .tables
            .values()
            .flat_map(|t| {
                t.shards
                    .iter()
                    .map(|s| (s.shard_id, (s.index, s.hash_range)))
            })
            .collect();
        Self {
            snapshot,
            workers,
            transport,
            counters: Arc::default(),
            shard_index: Arc::new(shard_index),
            facts: Mutex::default(),
            options: Mutex::default(),
        }
    }

    /// The rule for one planning run: this rule's catalog and workers, with the statement's
    /// counters and settings and facts of its own, so that concurrent statements sharing a
    /// session never see each other's.
    fn for_run(&self, options: PlannerOptions) -> Self {
        Self {
            snapshot: Arc::clone(&self.snapshot),
            workers: Arc::clone(&self.workers),
            transport: Arc::clone(&self.transport),
            counters: super::statement_counters::current(),
            shard_index: Arc::clone(&self.shard_index),
            facts: Mutex::default(),
            options: Mutex::new(options),
        }
    }

    pub(super) fn scan_layout(&self, scan: &ShardScanExec) -> Option<Layout> {
        if scan.shards().iter().any(|s| s.node_id == NodeId(0)) {
            return None;
        }
        let replicated_on = (!scan.replicas().is_empty())
            .then(|| scan.replicas().iter().map(|r| r.node_id).collect());
        let mut layout = Layout {
            indexes: Vec::new(),
            ranges: Vec::new(),
            nodes: Vec::new(),
            shard_ids: Vec::new(),
            replicated_on,
            shuffled: false,
        };
        for shard in scan.shards() {
            let (index, range) = *self.shard_index.get(&shard.shard_id)?;
            layout.indexes.push(index);
            layout.ranges.push(range);
            layout.nodes.push(shard.node_id);
            layout.shard_ids.push(shard.shard_id);
        }
        Some(layout)
    }

    /// If `node` heads a subtree that can run shard group by shard group, its layout.
    pub(super) fn layout(&self, node: &Arc<dyn ExecutionPlan>) -> Option<Layout> {
        if let Some((_, layout)) = self.facts.lock().layouts.get(&address(node)) {
            return layout.clone();
        }
        let layout = self.compute_layout(node);
        self.facts
            .lock()
            .layouts
            .insert(address(node), (Arc::clone(node), layout.clone()));
        layout
    }

    pub(super) fn compute_layout(&self, node: &Arc<dyn ExecutionPlan>) -> Option<Layout> {
        if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
            return self.scan_layout(scan);
        }
        // Expressions need no check: a scalar subquery's value travels as a literal (see
        // `codec::encode_plan`), and whatever else cannot be encoded keeps its subtree here.
        if stays_on_coordinator(node) {
            return None;
        }
        if let Some(join) = node.downcast_ref::<HashJoinExec>() {
            return self
                .join_layout(
                    join.left(),
                    join.right(),
                    join.on(),
                    *join.join_type(),
                    !join.null_aware,
                )
                .map(|(layout, _)| layout)
                .or_else(|| self.shuffle_layout(join));
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
        if is_window(node) {
            // A window over the whole input (no `PARTITION BY`, so no exchange) runs on a
            // worker only when that input is one shard: then it is the whole input.
            return self
                .window_layout(node)
                .or_else(|| self.layout(child).filter(Layout::single_shard));
        }
        let layout = self.layout(child)?;
        // Sorts are matched by type: their name changes with a fetch ("SortExec(TopK)").
        let per_shard = match node.downcast_ref::<SortExec>() {
            Some(sort) => sort.preserve_partitioning(),
            None => is_per_partition(node) || is_round_robin(node),
        };
        (per_shard || layout.single_shard()).then_some(layout)
    }

    /// The layout of a join, and which side (if any) is broadcast to the other side's workers.
    pub(super) fn join_layout(
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
        // Not co-located: send one side's rows straight into the other side's shards, or the
        // small side to the workers of the other one, whichever sends fewer rows.
        let broadcast = self.broadcast_choice(left, right, &l, &r, join_type);
        if let Some((layout, moved)) = self.aligned_move(left, right, on, join_type, &l, &r)
            && !self.broadcast_beats_move(left, right, moved.moved, broadcast.as_ref())
        {
            return Some((layout, None));
        }
        broadcast.map(|(layout, side)| (layout, Some(side)))
    }

    /// The layout of a join whose two sides run on the workers without moving rows: Citus's
    /// co-located joins, reference-table joins, and joins within one shard.
    pub(super) fn colocated_layout(
        &self,
        left: &Arc<dyn ExecutionPlan>,
        right: &Arc<dyn ExecutionPlan>,
        l: &Layout,
        r: &Layout,
        on: &[JoinKey],
        join_type: JoinType,
    ) -> Option<Layout> {
        if l.shuffled || r.shuffled {
            // A shuffle's tasks hold hash partitions, not shard groups: nothing lines up
            // with them without another shuffle.
            return None;
        }
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
    pub(super) fn broadcast_side(&self, join: &HashJoinExec) -> Option<JoinSide> {
        self.join_layout(
            join.left(),
            join.right(),
            join.on(),
            *join.join_type(),
            !join.null_aware,
        )
        .and_then(|(_, side)| side)
    }

    /// The layout of a shuffle join: a hash join that is neither co-located nor worth a
    /// broadcast, whose two sides run on the workers. Both sides are hash-partitioned by the
    /// join keys and sent between the workers; the join runs (partitioned) on every worker
    /// involved, each owning some of the partitions. DataFusion's own choice between a
    /// partitioned join and collecting the left side assumed one machine, so both qualify; a
    /// null-aware anti join (`NOT IN`) needs all build rows in one place and does not.
    pub(super) fn shuffle_layout(&self, join: &HashJoinExec) -> Option<Layout> {
        if join.null_aware || *join.partition_mode() == PartitionMode::Auto {
            return None;
        }
        let left = self.layout(below_join_exchange(join.left()))?;
        let right = self.layout(below_join_exchange(join.right()))?;
        if left.replicated_on.is_some() && right.replicated_on.is_some() {
            return None;
        }
        Some(Layout::shuffle_over(&[&left, &right]))
    }

    /// Whether `join` runs as a shuffle join (see [`Self::shuffle_layout`]).
    pub(super) fn is_shuffle_join(&self, join: &HashJoinExec) -> bool {
        self.join_layout(
            join.left(),
            join.right(),
            join.on(),
            *join.join_type(),
            !join.null_aware,
        )
        .is_none()
            && self.shuffle_layout(join).is_some()
    }

    /// One task per worker of `layout`: the shard groups it holds (none for a shuffle's
    /// consumers, which read partitions instead).
    pub(super) fn tasks_for(&self, layout: &Layout) -> Vec<WorkerTask> {
        type Held = (Vec<usize>, Vec<ShardId>, Vec<usize>);
        let mut by_node: BTreeMap<NodeId, Held> = BTreeMap::new();
        if layout.shuffled {
            for node in &layout.nodes {
                by_node.entry(*node).or_default();
            }
        }
        for (position, (node, shard)) in layout.nodes.iter().zip(&layout.shard_ids).enumerate() {
            let entry = by_node.entry(*node).or_default();
            entry.0.push(position);
            entry.1.push(*shard);
            entry
                .2
                .push(layout.indexes.get(position).copied().unwrap_or_default());
        }
        by_node
            .into_iter()
            .map(|(node_id, (positions, shard_ids, shard_indexes))| {
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
                    shard_indexes,
                }
            })
            .collect()
    }

    /// The stage that runs `subtree` on the workers of `layout`, its output hash-partitioned
    /// by `output` if it feeds a shuffle; `None` if its fragment cannot be sent to a worker.
    pub(super) fn build_stage(
        &self,
        subtree: Arc<dyn ExecutionPlan>,
        layout: &Layout,
        partitions: usize,
        output: Option<StageOutput>,
    ) -> Result<Option<DistributedExec>> {
        let tasks = self.tasks_for(layout);
        let per_task = (partitions / tasks.len().max(1)).max(1);
        // Broadcasts first, judged on the plan as DataFusion made it; a join inside a shuffle
        // side belongs to that side's own stage.
        let inside_shuffles = self.joins_inside_shuffles(&subtree);
        let (fragment, broadcasts) = cut_broadcasts(Arc::clone(&subtree), |join| {
            if inside_shuffles.contains(&(join as *const HashJoinExec as usize)) {
                None
            } else {
                self.broadcast_side(join)
            }
        })?;
        let Some((fragment, shuffles)) =
            self.cut_shuffles(fragment, tasks.len(), per_task, partitions)?
        else {
            return Ok(None);
        };
        let fragment = repair_copartitioning(fragment, partitions)?;
        let fragment = repair_orderings(fragment)?;
        let fragment = fragment
            .transform_up(|node| {
                if is_round_robin(&node) {
                    return Ok(Transformed::yes(Arc::clone(node.children()[0])));
                }
                Ok(Transformed::no(node))
            })?
            .data;
        let fragment = reduce_per_worker(
            drop_shard_exchanges(fragment, &|plan, index| {
                self.is_distribution_column(plan, index)
            })?,
            partitions,
        )?;
        // A producer stage ends in its routing to the stage that reads it; any other stage
        // keeps the order its subtree promised.
        let fragment = match output {
            Some(output) => output.route(fragment)?,
            None => keeping_order(fragment, subtree.output_ordering())?,
        };
        if let Err(e) =
            shardfusion_common::codec::encode_plan(without_markers(Arc::clone(&fragment))?)
        {
            tracing::debug!("keeping {} on the coordinator: {e}", subtree.name());
            return Ok(None);
        }
        let broadcasts = broadcasts
            .into_iter()
            .map(|input| self.distribute_plan(input, partitions))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(
            DistributedExec::new(
                fragment,
                broadcasts,
                tasks,
                Arc::clone(&self.workers),
                Arc::clone(&self.transport),
                Arc::clone(&self.counters),
            )
            .reading_shuffles(shuffles, per_task),
        ))
    }

    /// Replaces `subtree` by a `DistributedExec`, or returns `None` if its fragment cannot be
    /// sent to a worker (then a lower cut is tried).
    pub(super) fn distribute(
        &self,
        subtree: Arc<dyn ExecutionPlan>,
        layout: &Layout,
        partitions: usize,
        parent_relies: bool,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let promised = subtree.output_partitioning().clone();
        let ordering = subtree.output_ordering().cloned();
        let Some(stage) = self.build_stage(subtree, layout, partitions, None)? else {
            return Ok(None);
        };
        let task_count = stage.tasks().len().max(1);
        let distributed: Arc<dyn ExecutionPlan> = Arc::new(stage);
        // Keep what the parent was promised.
        Ok(Some(match promised {
            // A partitioning on projected-away columns promises nothing a parent can use.
            Partitioning::Hash(exprs, n)
                if parent_relies && exprs.iter().all(|e| !mentions_unknown_column(e)) =>
            {
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

impl PhysicalOptimizerRule for DistributeRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = config
            .extensions
            .get::<PlannerOptions>()
            .cloned()
            .unwrap_or_default();
        self.for_run(options)
            .distribute_plan(plan, config.execution.target_partitions)
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn schema_check(&self) -> bool {
        true
    }
}

impl DistributeRule {
    /// Whether output column `index` of `node` is, unchanged, the distribution column of the
    /// table a scan below reads.
    pub(super) fn is_distribution_column(
        &self,
        node: &Arc<dyn ExecutionPlan>,
        index: usize,
    ) -> bool {
        let key = (address(node), index);
        if let Some((_, known)) = self.facts.lock().distribution_columns.get(&key) {
            return *known;
        }
        let known = self.compute_is_distribution_column(node, index);
        self.facts
            .lock()
            .distribution_columns
            .insert(key, (Arc::clone(node), known));
        known
    }

    pub(super) fn compute_is_distribution_column(
        &self,
        node: &Arc<dyn ExecutionPlan>,
        index: usize,
    ) -> bool {
        if let Some(read) = node.downcast_ref::<ShuffleReadExec>() {
            return matches!(read.kind(), ShuffleKind::ShardAligned { key_column } if key_column == index);
        }
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
            if self.repartitioned_aggregate(aggregate) {
                // Rows are partitioned by all the group keys together.
                return aggregate.group_expr().expr().len() == 1 && index == 0;
            }
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
            if self.is_shuffle_join(join) {
                return shuffle_key_column(join, index);
            }
            if let Some(aligned) = self.aligned_join(join) {
                return self.aligned_join_column(join, aligned, index);
            }
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
        passes_columns_through(node) && self.is_distribution_column(child, index)
    }

    /// Follows a join's output column to the side it comes from (before any join projection).
    pub(super) fn join_side_column(
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
        // A null-extended side's columns are NULL in rows every shard may emit: a group of
        // them is spread over all shards, so they are not distribution columns.
        match join_type {
            JoinType::Inner => {
                if index < left_width {
                    from_left(index)
                } else {
                    from_right(index - left_width)
                }
            }
            JoinType::Left => index < left_width && from_left(index),
            JoinType::Right => index >= left_width && from_right(index - left_width),
            JoinType::Full => false,
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                index < left_width && from_left(index)
            }
            JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => from_right(index),
        }
    }

    /// Cuts `plan` top-down: the highest node heading a subtree that can run on the workers
    /// becomes a `DistributedExec`.
    /// `partitions` is how many partitions a worker-side exchange should produce.
    pub(super) fn distribute_plan(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        partitions: usize,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let root = address(&plan);
        plan.transform_down(|node| {
            let Some(layout) = self.layout(&node) else {
                return Ok(Transformed::no(node));
            };
            // Nothing above the root relies on how its rows are hash-partitioned.
            let parent_relies = address(&node) != root;
            match self.distribute(Arc::clone(&node), &layout, partitions, parent_relies)? {
                Some(distributed) => {
                    Ok(Transformed::new(distributed, true, TreeNodeRecursion::Jump))
                }
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }
}
