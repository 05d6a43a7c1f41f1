//! [`DistributeRule`]: cuts the physical plan into coordinator work and worker fragments.
//!
//! Walking down from the root, the first node that heads a chain of per-shard operators
//! ending in a `ShardScanExec` whose shards live on workers becomes a fragment. A chain may
//! contain, on a single input each:
//! - `FilterExec`, `ProjectionExec`, `CoalesceBatchesExec`, `CooperativeExec`;
//! - `AggregateExec` in `Partial` mode (the coordinator's `Final` merges the states);
//! - `SortExec` with `preserve_partitioning` and `LocalLimitExec` (per partition, so per
//!   shard; the coordinator's merge or global limit finishes the job);
//! - round-robin `RepartitionExec`, which is dropped: each shard is already a partition.
//!
//! The scan's output partitioning is never declared as hash partitioning, so DataFusion never
//! relies on our xxh3 sharding.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
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

    fn distribute(
        &self,
        chain: Arc<dyn ExecutionPlan>,
        scan: &ShardScanExec,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let fragment = chain
            .transform_up(|node| {
                if let Some(repartition) = node.downcast_ref::<RepartitionExec>()
                    && matches!(repartition.partitioning(), Partitioning::RoundRobinBatch(_))
                {
                    return Ok(Transformed::yes(Arc::clone(repartition.input())));
                }
                Ok(Transformed::no(node))
            })?
            .data;
        let mut by_node: BTreeMap<NodeId, Vec<ShardFiles>> = BTreeMap::new();
        for shard in scan.shards() {
            by_node
                .entry(shard.node_id)
                .or_default()
                .push(shard.clone());
        }
        let tasks = by_node
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
        Ok(Arc::new(DistributedExec::new(
            fragment,
            tasks,
            Arc::clone(&self.workers),
            Arc::clone(&self.counters),
        )))
    }
}

/// If `node` heads a per-shard chain over a worker-side scan, that scan.
fn worker_scan(node: &Arc<dyn ExecutionPlan>) -> Option<&ShardScanExec> {
    if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
        let on_workers = scan.shards().iter().all(|s| s.node_id != NodeId(0));
        return on_workers.then_some(scan);
    }
    let children = node.children();
    let [child] = children.as_slice() else {
        return None;
    };
    let per_shard = match node.name() {
        "FilterExec"
        | "ProjectionExec"
        | "CoalesceBatchesExec"
        | "CooperativeExec"
        | "LocalLimitExec" => true,
        "RepartitionExec" => node
            .downcast_ref::<RepartitionExec>()
            .is_some_and(|r| matches!(r.partitioning(), Partitioning::RoundRobinBatch(_))),
        "AggregateExec" => node
            .downcast_ref::<AggregateExec>()
            .is_some_and(|a| *a.mode() == AggregateMode::Partial),
        "SortExec" => node
            .downcast_ref::<SortExec>()
            .is_some_and(|s| s.preserve_partitioning()),
        _ => false,
    };
    if per_shard && shippable_expressions(node) {
        worker_scan(child)
    } else {
        None
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
            let scan = worker_scan(&node).cloned();
            match scan {
                Some(scan) => {
                    // A lone round-robin repartition would only be dropped again.
                    let distributed = self.distribute(Arc::clone(&node), &scan)?;
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
