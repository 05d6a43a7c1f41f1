//! `citus_cleanup_orphaned_resources()`: reconciles every node's shard files with the catalog
//! now (see [`crate::cluster::orphan_cleanup`]); returns how many orphaned files it removed.

use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::DataType;
use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::single_value;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_cleanup_orphaned_resources"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(0)?;
    let removed = crate::cluster::orphan_cleanup::cleanup_all(coordinator.cluster()).await?;
    Ok(single_value(
        "citus_cleanup_orphaned_resources",
        DataType::Int64,
        Arc::new(Int64Array::from(vec![removed as i64])),
    ))
}
