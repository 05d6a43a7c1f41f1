//! `citus_activate_node(nodename, nodeport)` (also `master_activate_node`): a disabled node
//! serves again. Returns its node id, as in Citus. Reference tables it lacks are copied to it
//! first, so it never serves without them.

use std::sync::Arc;

use datafusion::arrow::array::Int32Array;
use datafusion::arrow::datatypes::DataType;
use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::single_value;
use crate::cluster::reference_copies::copy_reference_tables_to;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_activate_node", "master_activate_node"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(2)?;
    let (host, port) = call.node_address()?;
    let cluster = coordinator.cluster();
    let node = cluster
        .catalog
        .snapshot()
        .nodes
        .iter()
        .find(|n| n.node_name == host && n.node_port == port)
        .cloned()
        .ok_or_else(|| {
            SchedulerError::Catalog(shardfusion_catalog::CatalogError::NodeNotFound {
                address: format!("{host}:{port}"),
            })
        })?;
    copy_reference_tables_to(cluster, node.group_id).await?;
    // A node whose join was cut short joins now.
    cluster.catalog.finish_join(node.node_id)?;
    let node = cluster.catalog.set_node_active(&host, port, true)?;
    Ok(single_value(
        &call.name,
        DataType::Int32,
        Arc::new(Int32Array::from(vec![node.node_id.0])),
    ))
}
