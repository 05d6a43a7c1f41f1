//! `citus_set_node_property(nodename, nodeport, property, value)`: sets a node's property.
//! As in Citus, the one property is `shouldhaveshards`: a node set to `false` gets no new
//! shards (tables distributed from now on, and rebalancing), and keeps those it has.

use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::void_result;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_set_node_property", "master_set_node_property"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(4)?;
    let (host, port) = call.node_address()?;
    let property = call.required_text(2, "property")?;
    if !property.trim().eq_ignore_ascii_case("shouldhaveshards") {
        return Err(SchedulerError::invalid(format!(
            "unsupported node property \"{property}\": the only one is shouldhaveshards"
        )));
    }
    let value = call.boolean(3, "value")?.ok_or_else(|| {
        SchedulerError::invalid(format!("{} needs the argument value", call.name))
    })?;
    coordinator
        .cluster()
        .catalog
        .set_should_have_shards(&host, port, value)?;
    Ok(void_result(&call.name))
}
