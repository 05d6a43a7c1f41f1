//! `citus_add_node(nodename, nodeport)` (also `master_add_node`): adds a worker, once it has
//! proved that it knows the cluster secret (see [`crate::cluster::node_membership`]); returns
//! its node id.

use std::sync::Arc;

use datafusion::arrow::array::Int32Array;
use datafusion::arrow::datatypes::DataType;
use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::single_value;
use crate::cluster::node_membership;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_add_node", "master_add_node"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    let (host, port) = call.node_address()?;
    let node = node_membership::add_node(coordinator.cluster(), &host, port).await?;
    Ok(single_value(
        &call.name,
        DataType::Int32,
        Arc::new(Int32Array::from(vec![node.node_id.0])),
    ))
}
