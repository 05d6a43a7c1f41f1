//! `get_shard_id_for_distribution_column(table_name, distribution_value)`: the shard a value
//! hashes to (a reference table's only shard).

use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::DataType;
use futures::FutureExt;
use shardfusion_catalog::{CatalogError, TableKind};
use shardfusion_common::hashing::hash_scalar;

use super::call::{FunctionCall, relation_name};
use super::registry::CitusFunction;
use super::results::single_value;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["get_shard_id_for_distribution_column"],
    superuser_only: false,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(2)?;
    let name = relation_name(&call.required_text(0, "table_name")?);
    let snapshot = coordinator.cluster().catalog.snapshot();
    let table = snapshot
        .table(&name)
        .ok_or_else(|| CatalogError::TableNotFound { name: name.clone() })?;
    let shard = match &table.kind {
        TableKind::Local => {
            return Err(SchedulerError::invalid(format!(
                "relation \"{name}\" is not a distributed table"
            )));
        }
        TableKind::Reference { .. } => table.shards.first(),
        TableKind::Distributed { .. } => {
            let (_, _, data_type) = table.distribution_column().ok_or_else(|| {
                SchedulerError::invalid(format!("{name} has no distribution column"))
            })?;
            let value = call.arg(1, "distribution_value").ok_or_else(|| {
                SchedulerError::invalid("distribution value cannot be NULL for distributed tables")
            })?;
            let hash = hash_scalar(value, data_type)?;
            table.shard_of_hash(hash)
        }
    };
    let shard = shard
        .ok_or_else(|| SchedulerError::invalid(format!("relation \"{name}\" has no shards")))?;
    Ok(single_value(
        "get_shard_id_for_distribution_column",
        DataType::Int64,
        Arc::new(Int64Array::from(vec![shard.shard_id.0])),
    ))
}
