//! `citus_version()`: which engine answers, in Citus's one-string form.

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::DataType;
use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::single_value;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_version"],
    superuser_only: false,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(_coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(0)?;
    Ok(single_value(
        "citus_version",
        DataType::Utf8,
        Arc::new(StringArray::from(vec![format!(
            "ShardFusion {} on Apache DataFusion (Citus-compatible metadata)",
            env!("CARGO_PKG_VERSION")
        )])),
    ))
}
