//! `citus_move_shard_placement(shard_id, source_node_id, target_node_id [, shard_transfer_mode])`
//! and the older `(shard_id, source_node_name, source_node_port, target_node_name,
//! target_node_port [, shard_transfer_mode])` (also `master_move_shard_placement`): moves the
//! shard and its co-located shards to the target node while queries and writes go on (see
//! `crate::cluster::shard_moves`). Every transfer mode (`auto`, `force_logical`,
//! `block_writes`) moves the same way: writes are never blocked for longer than the switch.

use datafusion::common::ScalarValue;
use futures::FutureExt;
use shardfusion_catalog::{CatalogSnapshot, Node};
use shardfusion_common::ids::{NodeId, ShardId};

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::void_result;
use crate::cluster::shard_moves::{move_shard_group, shard_group_of};
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_move_shard_placement", "master_move_shard_placement"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

/// The transfer modes Citus accepts.
const TRANSFER_MODES: &[&str] = &["auto", "force_logical", "block_writes"];

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(6)?;
    let cluster = coordinator.cluster();
    let snapshot = cluster.catalog.snapshot();
    let shard = ShardId(call.integer(0, "shard_id")?.ok_or_else(|| {
        SchedulerError::invalid(format!("{} needs the argument shard_id", call.name))
    })?);
    let by_name = matches!(call.arg(1, "source_node_name"), Some(ScalarValue::Utf8(Some(s))) if s.trim().parse::<i64>().is_err());
    let (source, target, mode) = if by_name {
        let source = node_at(&snapshot, &call, 1, "source_node_name", "source_node_port")?;
        let target = node_at(&snapshot, &call, 3, "target_node_name", "target_node_port")?;
        (source, target, call.text(5, "shard_transfer_mode")?)
    } else {
        let source = node_by_id(&snapshot, &call, 1, "source_node_id")?;
        let target = node_by_id(&snapshot, &call, 2, "target_node_id")?;
        (source, target, call.text(3, "shard_transfer_mode")?)
    };
    if let Some(mode) = mode
        && !TRANSFER_MODES.contains(&mode.trim().to_ascii_lowercase().as_str())
    {
        return Err(SchedulerError::invalid(format!(
            "invalid shard_transfer_mode \"{mode}\": use auto, force_logical or block_writes"
        )));
    }
    let group = shard_group_of(&snapshot, shard)?;
    move_shard_group(cluster, group, source.group_id, target.group_id).await?;
    Ok(void_result(&call.name))
}

fn node_by_id(
    snapshot: &CatalogSnapshot,
    call: &FunctionCall,
    position: usize,
    name: &str,
) -> Result<Node> {
    let id = call.integer(position, name)?.ok_or_else(|| {
        SchedulerError::invalid(format!("{} needs the argument {name}", call.name))
    })?;
    let id = i32::try_from(id)
        .map_err(|_| SchedulerError::invalid(format!("{name} {id} is out of range")))?;
    snapshot
        .node(NodeId(id))
        .cloned()
        .ok_or_else(|| SchedulerError::unknown(format!("node {id} is not in pg_dist_node")))
}

fn node_at(
    snapshot: &CatalogSnapshot,
    call: &FunctionCall,
    position: usize,
    host: &str,
    port: &str,
) -> Result<Node> {
    let name = call.required_text(position, host)?;
    let number = call.integer(position + 1, port)?.ok_or_else(|| {
        SchedulerError::invalid(format!("{} needs the argument {port}", call.name))
    })?;
    snapshot
        .nodes
        .iter()
        .find(|n| n.node_name == name && i64::from(n.node_port) == number)
        .cloned()
        .ok_or_else(|| {
            SchedulerError::unknown(format!("node {name}:{number} is not in pg_dist_node"))
        })
}
