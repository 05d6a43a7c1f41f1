//! `undistribute_table(table_name)`: turns a distributed or reference table back into a local
//! table on the coordinator, as in Citus; its rows move from the workers into the
//! coordinator's shard (see [`crate::write::distribution`]), and it leaves its colocation
//! group. Inside a transaction it rolls back with it.

use futures::FutureExt;
use shardfusion_catalog::layout::DistributionRequest;

use super::call::{FunctionCall, relation_name};
use super::registry::CitusFunction;
use super::results::void_result;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["undistribute_table"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    // Citus's optional `cascade_via_foreign_keys` is accepted: foreign keys are recorded,
    // not enforced, so no other table has to move with this one.
    call.check_arity(2)?;
    call.boolean(1, "cascade_via_foreign_keys")?;
    let table = relation_name(&call.required_text(0, "table_name")?);
    crate::write::distribution::distribute(coordinator, &table, &DistributionRequest::Local)
        .await?;
    Ok(void_result("undistribute_table"))
}
