//! `create_distributed_table(table_name, distribution_column, distribution_type,
//! colocate_with, shard_count)`: hash-distributes a table; rows it already holds move into the
//! new shards (see [`crate::write::distribution`]).

use std::sync::Arc;

use futures::FutureExt;
use shardfusion_catalog::CatalogError;
use shardfusion_catalog::layout::{ColocateWith, DistributionRequest};

use super::call::{FunctionCall, relation_name};
use super::registry::CitusFunction;
use super::results::void_result;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::session::transaction_branch::ddl_catalog;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["create_distributed_table"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(5)?;
    let table = relation_name(&call.required_text(0, "table_name")?);
    let column = call.required_text(1, "distribution_column")?;
    if let Some(kind) = call.text(2, "distribution_type")?
        && !kind.eq_ignore_ascii_case("hash")
    {
        return Err(SchedulerError::unsupported(format!(
            "distribution_type '{kind}' (only 'hash' is)"
        )));
    }
    let colocate_with = call
        .text(3, "colocate_with")?
        .map(|c| match ColocateWith::parse(&c) {
            ColocateWith::Table(t) => ColocateWith::Table(relation_name(&t)),
            other => other,
        })
        .unwrap_or(ColocateWith::Default);
    let shard_count = match call.integer(4, "shard_count")? {
        Some(n) if !(1..=64_000).contains(&n) => {
            return Err(CatalogError::BadShardCount { given: n }.into());
        }
        Some(n) => Some(n as usize),
        // As Citus: the session's `citus.shard_count`, else the default.
        None => call.default_shard_count,
    };
    let snapshot = ddl_catalog(coordinator.cluster())?.snapshot();
    let schema = snapshot
        .table(&table)
        .map(|t| Arc::clone(&t.schema))
        .ok_or_else(|| CatalogError::TableNotFound {
            name: table.clone(),
        })?;
    // Citus takes the column name as written; accept Postgres-folded names too.
    let column = if schema.column_with_name(&column).is_some() {
        column
    } else {
        column.to_ascii_lowercase()
    };
    let request = DistributionRequest::Distributed {
        column,
        shard_count,
        colocate_with,
    };
    crate::write::distribution::distribute(coordinator, &table, &request).await?;
    Ok(void_result("create_distributed_table"))
}
