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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, Result, internal_err};
use datafusion::physical_expr::expressions::{Column, UnKnownColumn};
use datafusion::physical_expr::{LexOrdering, OrderingRequirements, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{
    Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning, StatisticsArgs,
    StatisticsContext,
};
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_common::exchange::shard_index::{shard_aligned_output, without_shard_column};
use shardfusion_common::exchange::shuffle_read::{ShuffleKind, ShuffleReadExec};
use shardfusion_common::exchange::transport::Transport;
use shardfusion_common::hashing::hash_compatible;
use shardfusion_common::ids::{NodeId, ShardId};
use shardfusion_common::shard_scan::ShardScanExec;

use super::broadcast::{JoinSide, cut_broadcasts, drives_join, estimated_rows, worth_broadcasting};
use super::operators::{is_per_partition, passes_columns_through, stays_on_coordinator};
use super::partial_reduce::reduce_per_worker;
use super::partition_wise::drop_shard_exchanges;
use crate::cluster::worker_pool::WorkerPool;
use crate::exec::distributed_exec::{DistributedExec, WorkerTask};
use crate::exec::shard_partitioned::without_markers;
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
    /// For subtrees over a worker-to-worker shuffle: `nodes` are the consumer workers (one
    /// task each), and the rows are partitioned by the shuffle keys, not by shards.
    shuffled: bool,
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
        !self.shuffled
            && !other.shuffled
            && self.indexes == other.indexes
            && self.nodes == other.nodes
    }

    /// The consumer layout of a shuffle between the workers of `sides`.
    fn shuffle_over(sides: &[&Layout]) -> Self {
        let mut nodes: Vec<NodeId> = sides.iter().flat_map(|l| l.nodes.iter().copied()).collect();
        nodes.sort();
        nodes.dedup();
        Layout {
            indexes: Vec::new(),
            nodes,
            shard_ids: Vec::new(),
            replicated_on: None,
            shuffled: true,
        }
    }
}

/// Estimated groups from which a GROUP BY that is not complete per shard is finalized on the
/// workers (after a shuffle by its keys) rather than on the coordinator.
const REPARTITION_MIN_GROUPS: usize = 100;

/// A join that sends one side's rows into the other side's shards: which side moves, and
/// which pair of the join's keys routes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AlignedMove {
    moved: JoinSide,
    key: usize,
}

/// A fragment with its shuffled sides cut out, and the producer stages that feed them.
type CutFragment = (Arc<dyn ExecutionPlan>, Vec<Arc<dyn ExecutionPlan>>);

/// How a producer stage routes its rows to the stage that reads them.
enum StageOutput {
    /// DataFusion's hash of the keys, into a shuffle's partitions.
    Hash(Partitioning),
    /// By the shard `key` hashes to (of `shard_count`), keeping only the `wanted` shards.
    IntoShards {
        key: Arc<dyn PhysicalExpr>,
        shard_count: usize,
        wanted: Option<Vec<usize>>,
    },
}

impl StageOutput {
    /// `plan` ending in this routing.
    fn route(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        match self {
            StageOutput::Hash(partitioning) => Ok(Arc::new(RepartitionExec::try_new(
                plan,
                partitioning.clone(),
            )?)),
            StageOutput::IntoShards {
                key,
                shard_count,
                wanted,
            } => shard_aligned_output(plan, Arc::clone(key), *shard_count, wanted.as_deref()),
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct DistributeRule {
    snapshot: Arc<CatalogSnapshot>,
    workers: Arc<WorkerPool>,
    transport: Arc<dyn Transport>,
    counters: Arc<QueryCounters>,
    /// Every shard's index within its table.
    shard_index: HashMap<ShardId, usize>,
    /// The distribution facts of every node seen in this run, computed once (bottom-up, as
    /// each node's facts are built from its children's).
    facts: Mutex<Facts>,
}

/// Per-node results, keyed by the node's address; each entry keeps its node alive, so an
/// address is never reused for another node while the cache holds it. Cleared after each
/// optimizer run.
#[derive(Debug, Default)]
struct Facts {
    layouts: HashMap<usize, (Arc<dyn ExecutionPlan>, Option<Layout>)>,
    distribution_columns: HashMap<(usize, usize), (Arc<dyn ExecutionPlan>, bool)>,
}

fn address(node: &Arc<dyn ExecutionPlan>) -> usize {
    Arc::as_ptr(node) as *const () as usize
}

impl DistributeRule {
    pub fn new(
        snapshot: Arc<CatalogSnapshot>,
        workers: Arc<WorkerPool>,
        transport: Arc<dyn Transport>,
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
            transport,
            counters,
            shard_index,
            facts: Mutex::default(),
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
            shuffled: false,
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

    fn compute_layout(&self, node: &Arc<dyn ExecutionPlan>) -> Option<Layout> {
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
            return self.window_layout(node);
        }
        let layout = self.layout(child)?;
        // Sorts are matched by type: their name changes with a fetch ("SortExec(TopK)").
        let per_shard = match node.downcast_ref::<SortExec>() {
            Some(sort) => sort.preserve_partitioning(),
            None => is_per_partition(node) || is_round_robin(node),
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
    fn repartitioned_aggregate(&self, aggregate: &AggregateExec) -> bool {
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
            .or_else(|| estimated_rows(partial_aggregate.input()));
        groups.is_some_and(|g| g >= REPARTITION_MIN_GROUPS)
    }

    /// The layout of a window function partitioned by some keys (DataFusion feeds it a hash
    /// exchange by those keys, then a per-partition sort): where its input runs on the
    /// workers, every window partition is complete in one shard group when a key is a
    /// distribution column, and otherwise after a shuffle by the keys.
    fn window_layout(&self, window: &Arc<dyn ExecutionPlan>) -> Option<Layout> {
        let (_, below, _) = window_exchange(window)?;
        let layout = self.layout(below)?;
        if layout.single_shard() || self.window_complete_per_shard(window) {
            return Some(layout);
        }
        Some(Layout::shuffle_over(&[&layout]))
    }

    /// Whether a window's partitions each lie in one shard group: a partition key is a
    /// distribution column of its input.
    fn window_complete_per_shard(&self, window: &Arc<dyn ExecutionPlan>) -> bool {
        let Some((_, below, keys)) = window_exchange(window) else {
            return false;
        };
        keys.iter()
            .any(|k| column_index(k).is_some_and(|i| self.is_distribution_column(below, i)))
    }

    /// Whether `window` runs on the workers after a shuffle by its partition keys.
    fn repartitioned_window(&self, window: &Arc<dyn ExecutionPlan>) -> bool {
        window_exchange(window).is_some_and(|(_, below, _)| {
            self.layout(below).is_some_and(|l| !l.single_shard())
                && !self.window_complete_per_shard(window)
        })
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
        // Not co-located: send one side's rows straight into the other side's shards.
        if let Some((layout, _)) = self.aligned_move(left, right, on, join_type, &l, &r) {
            return Some((layout, None));
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

    /// A join that is not co-located, one of whose sides reads shards by a distribution
    /// column the join key pairs with: the other side's rows can go straight into those shards
    /// (Citus's repartition of one side), routed by the shard their key hashes to. Needs a
    /// key of a hash-compatible type (equal values hash alike) and a moved side that runs on
    /// the workers. When both sides could stay, the smaller (by estimate) moves.
    fn aligned_move(
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
            let shard_count = self.shard_count(stay)?;
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
                let size = |plan| estimated_rows(plan).unwrap_or(usize::MAX);
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
    fn aligned_join(&self, join: &HashJoinExec) -> Option<AlignedMove> {
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
        self.aligned_move(left, right, join.on(), *join.join_type(), &l, &r)
            .map(|(_, aligned)| aligned)
    }

    /// The shard count of the distributed table `plan` reads by shards.
    fn shard_count(&self, plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
        let mut count = None;
        let _ = plan.apply(|node| {
            if let Some(scan) = node.downcast_ref::<ShardScanExec>()
                && scan.distribution_column().is_some()
                && scan.replicas().is_empty()
            {
                count = self
                    .snapshot
                    .table(scan.table_name())
                    .map(|t| t.shards.len());
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        count
    }

    /// Whether output column `index` (before the join's projection) of a join that moved one
    /// side into the other's shards is a distribution column: on the side that stayed, as
    /// before; on the moved side, only the key its rows were routed by.
    fn aligned_join_column(&self, join: &HashJoinExec, aligned: AlignedMove, index: usize) -> bool {
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

    /// The side of `join` that is broadcast, if it runs on the workers as a broadcast join.
    fn broadcast_side(&self, join: &HashJoinExec) -> Option<JoinSide> {
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
    fn shuffle_layout(&self, join: &HashJoinExec) -> Option<Layout> {
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
    fn is_shuffle_join(&self, join: &HashJoinExec) -> bool {
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

    /// Cuts the sides of every shuffle join in `fragment` (not looking into the sides
    /// themselves) into producer stages, each hash-repartitioned by its join keys into
    /// `consumers` × `per_task` partitions; the join reads them through `ShuffleReadExec`
    /// placeholders. `None` if a side cannot be sent to the workers.
    fn cut_shuffles(
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
                for (side, keys) in sides {
                    let input = below_join_exchange(&side);
                    match self.hash_shuffle(
                        input,
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
    fn hash_shuffle(
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
    fn cut_aligned(
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
        let (Some(layout), Some(stay_layout), Some(shard_count)) = (
            self.layout(input),
            self.layout(stay),
            self.shard_count(stay),
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
            shard_count,
            wanted: (wanted.len() < shard_count).then_some(wanted),
        };
        let Some(stage) = self.build_stage(Arc::clone(input), &layout, partitions, Some(output))?
        else {
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
    fn joins_inside_shuffles(&self, fragment: &Arc<dyn ExecutionPlan>) -> HashSet<usize> {
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

    /// One task per worker of `layout`: the shard groups it holds (none for a shuffle's
    /// consumers, which read partitions instead).
    fn tasks_for(&self, layout: &Layout) -> Vec<WorkerTask> {
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
    fn build_stage(
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
    fn distribute(
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

/// Whether output column `index` (before the join's projection) of a shuffle join partitions
/// its rows: the shuffle has one key and the column is that key on a side whose rows are
/// never null-extended (NULL keys of unmatched rows would be spread over every partition).
fn shuffle_key_column(join: &HashJoinExec, index: usize) -> bool {
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

/// Restores what nodes require of their inputs' partitioning where a cut changed it (a
/// shuffle read has its own partition count, and DataFusion may have left out an exchange
/// because an input was already partitioned its way): an input that must be one partition (a
/// collected build side) is merged; the inputs of a two-input node that need co-partitioned
/// inputs (partitioned joins) are hash-partitioned by their keys into `partitions`.
fn repair_copartitioning(
    plan: Arc<dyn ExecutionPlan>,
    partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let children = node.children();
        let requirements = node.input_distribution_requirements().into_per_child();
        // An input that must be one partition (a collected build side) and no longer is.
        let must_merge = |child: &Arc<dyn ExecutionPlan>, requirement: &Distribution| {
            matches!(requirement, Distribution::SinglePartition)
                && child.output_partitioning().partition_count() > 1
        };
        if children.len() == requirements.len()
            && children
                .iter()
                .zip(&requirements)
                .any(|(child, requirement)| must_merge(child, requirement))
        {
            let repaired = children
                .iter()
                .zip(&requirements)
                .map(|(child, requirement)| {
                    if must_merge(child, requirement) {
                        Arc::new(CoalescePartitionsExec::new(Arc::clone(child)))
                            as Arc<dyn ExecutionPlan>
                    } else {
                        Arc::clone(child)
                    }
                })
                .collect();
            return Ok(Transformed::yes(replace_children_if_necessary(
                Arc::clone(&node),
                repaired,
            )?));
        }
        if children.len() != 2 || requirements.len() != 2 {
            return Ok(Transformed::no(node));
        }
        let keys: Vec<Vec<Arc<dyn PhysicalExpr>>> = requirements
            .iter()
            .filter_map(|r| match r {
                Distribution::KeyPartitioned(keys) => Some(keys.clone()),
                _ => None,
            })
            .collect();
        if keys.len() != 2 {
            return Ok(Transformed::no(node));
        }
        let counts: Vec<usize> = children
            .iter()
            .map(|c| c.output_partitioning().partition_count())
            .collect();
        let hashed = children
            .iter()
            .all(|c| matches!(c.output_partitioning(), Partitioning::Hash(_, _)));
        if hashed && counts[0] == counts[1] {
            return Ok(Transformed::no(node));
        }
        let mut repaired = Vec::with_capacity(2);
        for (child, keys) in children.into_iter().zip(keys) {
            repaired.push(Arc::new(RepartitionExec::try_new(
                Arc::clone(child),
                Partitioning::Hash(keys, partitions.max(1)),
            )?) as Arc<dyn ExecutionPlan>);
        }
        Ok(Transformed::yes(replace_children_if_necessary(
            Arc::clone(&node),
            repaired,
        )?))
    })
    .map(|t| t.data)
}

/// Sorts, per partition, every input that a node needs sorted and that a cut left unsorted:
/// DataFusion may have sorted below a join side (the join keeps its probe side's order), and
/// a shuffle read of that side arrives in no order.
fn repair_orderings(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let children = node.children();
        let requirements = node.required_input_ordering();
        if children.len() != requirements.len() {
            return Ok(Transformed::no(node));
        }
        let mut changed = false;
        let mut repaired = Vec::with_capacity(children.len());
        for (child, requirement) in children.into_iter().zip(requirements) {
            let Some(OrderingRequirements::Hard(alternatives)) = requirement else {
                repaired.push(Arc::clone(child));
                continue;
            };
            let satisfied = alternatives.iter().any(|r| {
                child
                    .equivalence_properties()
                    .ordering_satisfy_requirement(r.clone())
                    .unwrap_or(false)
            });
            match alternatives.into_iter().next() {
                Some(first) if !satisfied => {
                    changed = true;
                    repaired.push(Arc::new(
                        SortExec::new(LexOrdering::from(first), Arc::clone(child))
                            .with_preserve_partitioning(true),
                    ) as Arc<dyn ExecutionPlan>);
                }
                _ => repaired.push(Arc::clone(child)),
            }
        }
        if !changed {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(replace_children_if_necessary(
            Arc::clone(&node),
            repaired,
        )?))
    })
    .map(|t| t.data)
}

/// `fragment` sorted per partition by `ordering` unless it already is: what a stage promised
/// its parent (a merge of sorted streams) must hold after cuts.
fn keeping_order(
    fragment: Arc<dyn ExecutionPlan>,
    ordering: Option<&LexOrdering>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(ordering) = ordering else {
        return Ok(fragment);
    };
    if fragment
        .equivalence_properties()
        .ordering_satisfy(ordering.clone())?
    {
        return Ok(fragment);
    }
    Ok(Arc::new(
        SortExec::new(ordering.clone(), fragment).with_preserve_partitioning(true),
    ))
}

/// The input of a hash exchange that does not merge sorted streams.
fn below_join_exchange_hash(node: &Arc<dyn ExecutionPlan>) -> Option<&Arc<dyn ExecutionPlan>> {
    let repartition = node.downcast_ref::<RepartitionExec>()?;
    (matches!(repartition.partitioning(), Partitioning::Hash(_, _))
        && !repartition.preserve_order())
    .then(|| repartition.input())
}

/// What a join side reads below the exchange DataFusion put there for one machine: a hash
/// repartition (partitioned join), a merge into one partition (collected build side) or a
/// round-robin spread. A shuffle replaces it. Sorted merges are kept.
fn below_join_exchange(node: &Arc<dyn ExecutionPlan>) -> &Arc<dyn ExecutionPlan> {
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
fn emits_unmatched(join_type: JoinType, side: JoinSide) -> bool {
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
fn is_window(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<BoundedWindowAggExec>().is_some()
        || node.downcast_ref::<WindowAggExec>().is_some()
}

/// For a window fed by a hash exchange on its partition keys (under an optional
/// per-partition sort): the sort, the exchange's input and its keys.
type WindowExchange<'a> = (
    Option<&'a Arc<dyn ExecutionPlan>>,
    &'a Arc<dyn ExecutionPlan>,
    Vec<Arc<dyn PhysicalExpr>>,
);

fn window_exchange(window: &Arc<dyn ExecutionPlan>) -> Option<WindowExchange<'_>> {
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
fn exchange_hash_keys(node: &Arc<dyn ExecutionPlan>) -> Option<Vec<Arc<dyn PhysicalExpr>>> {
    match node.downcast_ref::<RepartitionExec>()?.partitioning() {
        Partitioning::Hash(keys, _) => Some(keys.clone()),
        _ => None,
    }
}

fn through_exchange(node: &Arc<dyn ExecutionPlan>) -> &Arc<dyn ExecutionPlan> {
    if is_exchange(node) {
        node.children().first().copied().unwrap_or(node)
    } else {
        node
    }
}

impl PhysicalOptimizerRule for DistributeRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let distributed = self.distribute_plan(plan, config.execution.target_partitions);
        *self.facts.lock() = Facts::default();
        distributed
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

    fn compute_is_distribution_column(&self, node: &Arc<dyn ExecutionPlan>, index: usize) -> bool {
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
    fn distribute_plan(
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
