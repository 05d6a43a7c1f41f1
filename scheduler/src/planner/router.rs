//! Router recognition: whether a planned query reads one shard group only, so that it can
//! run whole on one worker (Citus's router queries).
//!
//! A logical plan is *pinned* when every distributed table it scans (in subqueries too) has
//! filters that select exactly one shard (`=` or `IN` on the distribution column, pushed into
//! the scan; DataFusion carries such a filter across the keys of an inner join), all of them
//! the same shard index in the same colocation group, and every other table is a reference
//! table (a copy on every worker). Local tables and the metadata relations live on the
//! coordinator, so a plan reading them is never pinned.
//!
//! A pinned query is planned for one partition (`target_partitions = 1`): its one shard is
//! one partition anyway, so DataFusion's exchanges (round-robin and hash repartitions, the
//! partitioned joins and aggregates they feed) would only split and merge the same rows
//! again on the worker. `DistributeRule` then sends the whole plan — joins, aggregates,
//! windows, sorts and limits — to the worker holding that shard as one task.

use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use shardfusion_catalog::TableKind;
use shardfusion_common::ids::ColocationId;

use crate::session::table_provider::ShardedTableProvider;

/// Whether `plan` reads a single shard group (see the module docs).
pub fn is_pinned(plan: &LogicalPlan) -> bool {
    let mut pin: Option<(ColocationId, usize)> = None;
    let mut pinned = true;
    let walked = plan.apply_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = node else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let provider = source_as_provider(&scan.source).ok();
        let table = provider
            .as_ref()
            .and_then(|p| p.downcast_ref::<ShardedTableProvider>());
        let Some(table) = table else {
            pinned = false;
            return Ok(TreeNodeRecursion::Stop);
        };
        let here = match &table.table().kind {
            TableKind::Reference { .. } => return Ok(TreeNodeRecursion::Continue),
            TableKind::Local => None,
            TableKind::Distributed { colocation_id, .. } => {
                let colocation: ColocationId = *colocation_id;
                table
                    .prune(&scan.filters)
                    .filter(|shards| shards.len() == 1)
                    .and_then(|shards| shards.first().copied())
                    .map(|index| (colocation, index))
            }
        };
        match (here, pin) {
            (Some(here), None) => pin = Some(here),
            (Some(here), Some(seen)) if here == seen => {}
            _ => {
                pinned = false;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    walked.is_ok() && pinned && pin.is_some()
}
