//! `create_reference_table(table_name)`: replicates a table to every worker; rows it already
//! holds move into the new shard (see [`crate::write::distribution`]).

use futures::FutureExt;
use shardfusion_catalog::layout::DistributionRequest;

use super::call::{FunctionCall, relation_name};
use super::registry::CitusFunction;
use super::results::void_result;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["create_reference_table"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(1)?;
    let table = relation_name(&call.required_text(0, "table_name")?);
    crate::write::distribution::distribute(coordinator, &table, &DistributionRequest::Reference)
        .await?;
    Ok(void_result("create_reference_table"))
}
