//! `alter_distributed_table(table_name, distribution_column, shard_count, colocate_with,
//! cascade_to_colocated)`: changes a distributed table's shard count online (see
//! [`crate::write::reshard`]). With `cascade_to_colocated => true` every table co-located with
//! it changes too, in the same commit, and they stay co-located; with `false` the table
//! leaves its colocation group. As in Citus, a table with co-located tables needs one of the
//! two said.

use futures::FutureExt;
use shardfusion_catalog::{CatalogError, TableKind};

use super::call::{FunctionCall, relation_name};
use super::registry::CitusFunction;
use super::results::void_result;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["alter_distributed_table"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(5)?;
    let table = relation_name(&call.required_text(0, "table_name")?);
    let snapshot = coordinator.cluster().catalog.snapshot();
    let meta = snapshot
        .table(&table)
        .ok_or_else(|| CatalogError::TableNotFound {
            name: table.clone(),
        })?;
    let TableKind::Distributed {
        column,
        colocation_id,
    } = &meta.kind
    else {
        return Err(SchedulerError::invalid(format!(
            "alter_distributed_table: {table} is not a distributed table"
        )));
    };
    if let Some(wanted) = call.text(1, "distribution_column")?
        && !wanted.eq_ignore_ascii_case(column)
    {
        return Err(SchedulerError::unsupported(
            "changing a table's distribution column (alter_distributed_table's \
             distribution_column); only shard_count can change",
        ));
    }
    if let Some(other) = call.text(3, "colocate_with")?
        && !other.eq_ignore_ascii_case("none")
    {
        return Err(SchedulerError::unsupported(
            "alter_distributed_table(colocate_with => 'table'); re-shard with shard_count and \
             cascade_to_colocated instead",
        ));
    }
    let shard_count = match call.integer(2, "shard_count")? {
        Some(n) if !(1..=64_000).contains(&n) => {
            return Err(CatalogError::BadShardCount { given: n }.into());
        }
        Some(n) => n as usize,
        None => {
            return Err(SchedulerError::invalid(
                "alter_distributed_table: give shard_count => n (the only change supported)",
            ));
        }
    };
    let current = snapshot
        .colocations
        .get(colocation_id)
        .map_or(meta.shards.len(), |c| c.shard_count as usize);
    // After a tenant isolation the ranges are uneven: re-sharding to the same count evens
    // them out again.
    let even = meta.shard_ranges().is_some_and(|r| r.is_even());
    if current == shard_count && even {
        return Err(SchedulerError::invalid(format!(
            "alter_distributed_table: {table} already has {shard_count} shards"
        )));
    }
    let colocated = snapshot
        .tables
        .values()
        .filter(|t| t.name != table && t.kind.colocation_id() == Some(*colocation_id))
        .count();
    let cascade = match call.boolean(4, "cascade_to_colocated")? {
        Some(cascade) => cascade,
        None if colocated > 0 => {
            return Err(SchedulerError::invalid(format!(
                "alter_distributed_table: {table} is co-located with {colocated} other \
                 table(s); say cascade_to_colocated => true to re-shard them all together, or \
                 false to take {table} out of its colocation group"
            )));
        }
        None => false,
    };
    crate::write::reshard::reshard(coordinator, &table, shard_count, cascade).await?;
    Ok(void_result("alter_distributed_table"))
}
