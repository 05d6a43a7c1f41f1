//! `citus_drain_node(nodename, nodeport [, shard_transfer_mode] [, rebalance_strategy])`:
//! the node gets no new shards (`shouldhaveshards` false) and every shard group on it is
//! moved to the other nodes, while queries and writes go on. It can then be removed with
//! `citus_remove_node`.

use futures::FutureExt;

use super::call::FunctionCall;
use super::rebalance_options::{planned, strategy};
use super::registry::CitusFunction;
use super::results::void_result;
use crate::cluster::rebalance_job::run_plan;
use crate::cluster::rebalance_plan::PlanOptions;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_drain_node", "master_drain_node"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(4)?;
    let (host, port) = call.node_address()?;
    let strategy = strategy(&call, 3)?;
    let cluster = coordinator.cluster();
    let node = cluster.catalog.set_should_have_shards(&host, port, false)?;
    let options = PlanOptions {
        strategy,
        drain_only: true,
        drain_group: Some(node.group_id),
        ..PlanOptions::default()
    };
    run_plan(cluster, |snapshot| planned(snapshot, &options), 1).await?;
    Ok(void_result(&call.name))
}
