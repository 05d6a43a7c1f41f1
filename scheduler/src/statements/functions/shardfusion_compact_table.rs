//! `shardfusion_compact_table([table regclass])`: merges the small files of the table's shards
//! (every table's without an argument) now, as background compaction does
//! ([`crate::cluster::compaction`]); returns how many files were replaced.

use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::DataType;
use futures::FutureExt;

use super::call::{FunctionCall, relation_name};
use super::registry::CitusFunction;
use super::results::single_value;
use crate::cluster::compaction::{compact_all, compact_table};
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["shardfusion_compact_table"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(1)?;
    let cluster = coordinator.cluster();
    let replaced = match call.text(0, "table_name")? {
        Some(table) => compact_table(cluster, &relation_name(&table)).await?,
        None => compact_all(cluster).await,
    };
    Ok(single_value(
        "shardfusion_compact_table",
        DataType::Int64,
        Arc::new(Int64Array::from(vec![replaced as i64])),
    ))
}
