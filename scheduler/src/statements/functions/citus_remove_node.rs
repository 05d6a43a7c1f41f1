//! `citus_remove_node(nodename, nodeport)` (also `master_remove_node`): removes a node that
//! holds no shard placements.

use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::void_result;
use crate::cluster::node_membership;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_remove_node", "master_remove_node"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(2)?;
    let (host, port) = call.node_address()?;
    node_membership::remove_node(coordinator.cluster(), &host, port)?;
    Ok(void_result(&call.name))
}
