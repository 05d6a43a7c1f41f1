//! `get_rebalance_table_shards_plan([relation] [, threshold] [, max_shard_moves] ...
//! [, drain_only] [, rebalance_strategy])`: the moves `rebalance_table_shards` would make,
//! one row each, as Citus lists them.

use std::sync::Arc;

use datafusion::arrow::array::{Int32Array, Int64Array, StringArray};
use futures::FutureExt;

use super::call::FunctionCall;
use super::rebalance_options::{plan_options, planned};
use super::registry::CitusFunction;
use super::results::rows;
use crate::cluster::Cluster;
use crate::cluster::rebalance_plan::PlannedMove;
use crate::coordinator::StatementOutput;
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["get_rebalance_table_shards_plan"],
    superuser_only: false,
    rows: Some(rows_of),
    run: |coordinator, call| async move { rows_of(coordinator.cluster(), &call) }.boxed(),
};

fn rows_of(cluster: &Arc<Cluster>, call: &FunctionCall) -> Result<StatementOutput> {
    call.check_arity(8)?;
    let snapshot = cluster.catalog.snapshot();
    let moves = planned(&snapshot, &plan_options(call)?)?;
    plan_rows(&snapshot, &moves)
}

/// The plan's rows: `table_name, shardid, shard_size, sourcename, sourceport, targetname,
/// targetport`.
pub(super) fn plan_rows(
    snapshot: &shardfusion_catalog::CatalogSnapshot,
    moves: &[PlannedMove],
) -> Result<StatementOutput> {
    let node = |group| {
        snapshot
            .node_of_group(group)
            .map_or((String::new(), 0), |n| {
                (n.node_name.clone(), i32::from(n.node_port))
            })
    };
    let sources: Vec<_> = moves.iter().map(|m| node(m.from)).collect();
    let targets: Vec<_> = moves.iter().map(|m| node(m.to)).collect();
    rows(vec![
        (
            "table_name",
            Arc::new(StringArray::from_iter_values(
                moves.iter().map(|m| m.table_name.clone()),
            )),
        ),
        (
            "shardid",
            Arc::new(Int64Array::from_iter_values(
                moves.iter().map(|m| m.shard_id.0),
            )),
        ),
        (
            "shard_size",
            Arc::new(Int64Array::from_iter_values(
                moves.iter().map(|m| m.shard_size as i64),
            )),
        ),
        (
            "sourcename",
            Arc::new(StringArray::from_iter_values(
                sources.iter().map(|s| s.0.clone()),
            )),
        ),
        (
            "sourceport",
            Arc::new(Int32Array::from_iter_values(sources.iter().map(|s| s.1))),
        ),
        (
            "targetname",
            Arc::new(StringArray::from_iter_values(
                targets.iter().map(|s| s.0.clone()),
            )),
        ),
        (
            "targetport",
            Arc::new(Int32Array::from_iter_values(targets.iter().map(|s| s.1))),
        ),
    ])
}
