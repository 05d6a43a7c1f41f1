//! `citus_disable_node(nodename, nodeport [, synchronous])` (also `master_disable_node`): the
//! node stops serving. Its placements are no longer read (a query that needs a shard placed
//! only there fails with `Unavailable`, naming the shard) and it gets no new shards, until
//! `citus_activate_node`.

use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::void_result;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_disable_node", "master_disable_node"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(3)?;
    let (host, port) = call.node_address()?;
    coordinator
        .cluster()
        .catalog
        .set_node_active(&host, port, false)?;
    Ok(void_result(&call.name))
}
