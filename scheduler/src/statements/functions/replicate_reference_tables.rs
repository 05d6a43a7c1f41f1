//! `replicate_reference_tables([shard_transfer_mode])`: copies every reference table to each
//! active worker that lacks it (as adding a node already does), worker to worker.

use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::void_result;
use crate::cluster::reference_copies::copy_reference_tables_to;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["replicate_reference_tables"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(1)?;
    let cluster = coordinator.cluster();
    let groups: Vec<_> = cluster
        .catalog
        .snapshot()
        .nodes
        .iter()
        .filter(|n| n.is_active)
        .map(|n| n.group_id)
        .collect();
    for group in groups {
        copy_reference_tables_to(cluster, group).await?;
    }
    Ok(void_result(&call.name))
}
