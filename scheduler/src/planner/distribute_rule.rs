//! [`DistributeRule`]: cuts the physical plan into coordinator work and worker fragments.
//!
//! Walking down from the root, the first node that heads a chain of operators that can run
//! shard by shard over a `ShardScanExec` whose shards live on workers becomes a fragment.
//! Each node of a chain has one input and no scalar subquery, and is one of:
//! - `FilterExec`, `ProjectionExec`, `CoalesceBatchesExec`, `CooperativeExec`,
//!   `LocalLimitExec`, and `SortExec` with `preserve_partitioning` (per partition = per shard;
//!   the coordinator's merge or global limit finishes the job);
//! - `AggregateExec` in `Partial` mode (the coordinator's `Final` merges the states);
//! - a whole aggregate (`Final`/`FinalPartitioned` over its exchange and `Partial`, or
//!   `Single`) when it is complete per shard: its only grouping set contains the distribution
//!   column, so every group lives in one shard (HAVING and what follows come along);
//! - anything at all when the scan reads a single shard (Citus's router case): the whole
//!   chain runs on that shard's worker.
//!
//! Round-robin repartitions inside a fragment are dropped (each shard is already a partition),
//! as are the exchanges under aggregates that are complete per shard. If the replaced subtree
//! promised a partitioning (a single partition, or a hash partitioning its parent relies on),
//! the coordinator restores it above the `DistributedExec`.
//!
//! The scan's own partitioning is never declared as hash partitioning: shards are split by
//! xxh3, not by DataFusion's hash.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::physical_expr::expressions::{Column, UnKnownColumn};
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_common::ids::NodeId;
use shardfusion_common::shard_scan::{ShardFiles, ShardScanExec};

use crate::distributed_exec::{DistributedExec, WorkerTask};
use crate::statement_stats::QueryCounters;
use crate::worker_pool::WorkerPool;

/// See the module docs.
#[derive(Debug)]
pub struct DistributeRule {
    snapshot: Arc<CatalogSnapshot>,
    workers: Arc<WorkerPool>,
    counters: Arc<QueryCounters>,
}

impl DistributeRule {
    pub fn new(
        snapshot: Arc<CatalogSnapshot>,
        workers: Arc<WorkerPool>,
        counters: Arc<QueryCounters>,
    ) -> Self {
        Self {
            snapshot,
            workers,
            counters,
        }
    }

    /// Replaces `chain` by a `DistributedExec`, or returns `None` if its fragment cannot be
    /// sent to a worker (then a lower cut is tried).
    fn distribute(
        &self,
        chain: Arc<dyn ExecutionPlan>,
        scan: &ShardScanExec,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let promised = chain.output_partitioning().clone();
        let ordering = chain.output_ordering().cloned();
        let fragment = Arc::clone(&chain)
            .transform_up(|node| {
                if is_round_robin(&node) {
                    return Ok(Transformed::yes(Arc::clone(node.children()[0])));
                }
                if is_complete_aggregate_over_exchange(&node) {
                    let exchange = node.children()[0];
                    let partial = Arc::clone(exchange.children()[0]);
                    return Ok(Transformed::yes(replace_children_if_necessary(
                        node,
                        vec![partial],
                    )?));
                }
                Ok(Transformed::no(node))
            })?
            .data;
        if let Err(e) = shardfusion_common::codec::encode_plan(Arc::clone(&fragment)) {
            tracing::debug!("keeping {} on the coordinator: {e}", chain.name());
            return Ok(None);
        }
        let mut by_node: BTreeMap<NodeId, Vec<ShardFiles>> = BTreeMap::new();
        for shard in scan.shards() {
            by_node
                .entry(shard.node_id)
                .or_default()
                .push(shard.clone());
        }
        let tasks: Vec<WorkerTask> = by_node
            .into_iter()
            .map(|(node_id, shards)| {
                let (url, label) = match self.snapshot.node(node_id) {
                    Some(node) => (node.url(), format!("{}:{}", node.node_name, node.node_port)),
                    None => (String::new(), format!("node {node_id}")),
                };
                WorkerTask {
                    node_id,
                    url,
                    label,
                    shards,
                }
            })
            .collect();
        let task_count = tasks.len().max(1);
        let distributed: Arc<dyn ExecutionPlan> = Arc::new(DistributedExec::new(
            fragment,
            tasks,
            Arc::clone(&self.workers),
            Arc::clone(&self.counters),
        ));
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

fn mentions_unknown_column(expr: &Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> bool {
    expr.exists(|e| Ok(e.is::<UnKnownColumn>())).unwrap_or(true)
}

fn is_round_robin(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<RepartitionExec>()
        .is_some_and(|r| matches!(r.partitioning(), Partitioning::RoundRobinBatch(_)))
}

/// An exchange between the two phases of an aggregate.
fn is_exchange(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<CoalescePartitionsExec>().is_some()
        || node
            .downcast_ref::<RepartitionExec>()
            .is_some_and(|r| matches!(r.partitioning(), Partitioning::Hash(_, _)))
}

fn is_final(aggregate: &AggregateExec) -> bool {
    matches!(
        aggregate.mode(),
        AggregateMode::Final | AggregateMode::FinalPartitioned
    )
}

fn is_complete_aggregate_over_exchange(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<AggregateExec>().is_some_and(is_final)
        && node.children().first().is_some_and(|c| is_exchange(c))
}

/// If `node` heads a chain that can run shard by shard over a worker-side scan, that scan.
fn worker_scan(node: &Arc<dyn ExecutionPlan>) -> Option<ShardScanExec> {
    if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
        let on_workers = scan.shards().iter().all(|s| s.node_id != NodeId(0));
        return on_workers.then(|| scan.clone());
    }
    let children = node.children();
    let [child] = children.as_slice() else {
        return None;
    };
    if !shippable_expressions(node)
        || matches!(
            node.name(),
            "DistributedExec" | "AnalyzeExec" | "ScalarSubqueryExec"
        )
    {
        return None;
    }
    if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
        return aggregate_scan(aggregate, child);
    }
    let scan = worker_scan(child)?;
    let single_shard = scan.shards().len() <= 1;
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
    (per_shard || (single_shard && !node.name().contains("Sink"))).then_some(scan)
}

fn aggregate_scan(
    aggregate: &AggregateExec,
    child: &Arc<dyn ExecutionPlan>,
) -> Option<ShardScanExec> {
    match aggregate.mode() {
        AggregateMode::Partial => worker_scan(child),
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
            let scan = worker_scan(partial)?;
            complete_per_shard(aggregate, partial, &scan).then_some(scan)
        }
        _ => {
            let scan = worker_scan(child)?;
            complete_per_shard(aggregate, child, &scan).then_some(scan)
        }
    }
}

/// Whether every group of `aggregate` (over `input`) lies within one shard of `scan`.
fn complete_per_shard(
    aggregate: &AggregateExec,
    input: &Arc<dyn ExecutionPlan>,
    scan: &ShardScanExec,
) -> bool {
    if scan.shards().len() <= 1 {
        return true;
    }
    let Some(distribution) = scan.distribution_column() else {
        return false;
    };
    let group_by = aggregate.group_expr();
    if !group_by.is_single() {
        return false;
    }
    group_by.expr().iter().any(|(expr, _)| {
        expr.downcast_ref::<Column>()
            .and_then(|c| table_column(input, c.index()))
            == Some(distribution)
    })
}

/// The scan's table column that output column `index` of `node` passes through unchanged.
fn table_column(node: &Arc<dyn ExecutionPlan>, index: usize) -> Option<usize> {
    if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
        return scan.table_column(index);
    }
    let child = *node.children().first()?;
    if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
        let expr = &projection.expr().get(index)?.expr;
        let column = expr.downcast_ref::<Column>()?;
        return table_column(child, column.index());
    }
    if let Some(filter) = node.downcast_ref::<FilterExec>() {
        let index = match filter.projection() {
            Some(projection) => *projection.get(index)?,
            None => index,
        };
        return table_column(child, index);
    }
    if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
        let (expr, _) = aggregate.group_expr().expr().get(index)?;
        let column = expr.downcast_ref::<Column>()?;
        return table_column(child, column.index());
    }
    if node.downcast_ref::<SortExec>().is_some() {
        return table_column(child, index);
    }
    match node.name() {
        "CoalesceBatchesExec"
        | "CooperativeExec"
        | "LocalLimitExec"
        | "GlobalLimitExec"
        | "RepartitionExec"
        | "CoalescePartitionsExec"
        | "SortPreservingMergeExec" => table_column(child, index),
        _ => None,
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
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(scan) = worker_scan(&node) else {
                return Ok(Transformed::no(node));
            };
            match self.distribute(Arc::clone(&node), &scan)? {
                Some(distributed) => {
                    Ok(Transformed::new(distributed, true, TreeNodeRecursion::Jump))
                }
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "shardfusion_distribute"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
