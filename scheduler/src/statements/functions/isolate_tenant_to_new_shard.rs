//! `isolate_tenant_to_new_shard(table_name, tenant_id, cascade_option, shard_transfer_mode)`:
//! gives one tenant (a distribution value) a shard of its own, online, and returns that
//! shard's id, as in Citus. The shard holding the tenant is split into up to three shards
//! (below the tenant's hash, the hash alone, above it) in every table of its colocation
//! group, all in one commit ([`shardfusion_catalog::tenant_isolation_store`]); only that
//! shard group's rows are rewritten ([`crate::write::reshard`]). As in Citus, a table with
//! co-located tables needs `cascade_option => 'CASCADE'`. The new shards stay on the node of
//! the shard they replace; `citus_move_shard_placement` moves the tenant's shard elsewhere.

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
    names: &["isolate_tenant_to_new_shard"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

/// The transfer modes Citus takes. Every one behaves the same here: the rows are rewritten
/// while writes continue; only writes into the shard group being split are refused (40001,
/// retry) during the last round.
const TRANSFER_MODES: &[&str] = &["auto", "force_logical", "block_writes"];

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(4)?;
    let table = relation_name(&call.required_text(0, "table_name")?);
    let snapshot = coordinator.cluster().catalog.snapshot();
    let meta = snapshot
        .table(&table)
        .ok_or_else(|| CatalogError::TableNotFound {
            name: table.clone(),
        })?;
    let TableKind::Distributed { colocation_id, .. } = &meta.kind else {
        return Err(SchedulerError::invalid(format!(
            "isolate_tenant_to_new_shard: cannot isolate a tenant of {table}: it is not a \
             distributed table"
        )));
    };
    let (_, _, data_type) = meta
        .distribution_column()
        .ok_or_else(|| SchedulerError::invalid(format!("{table} has no distribution column")))?;
    let value = call.arg(1, "tenant_id").ok_or_else(|| {
        SchedulerError::invalid("isolate_tenant_to_new_shard: tenant_id cannot be NULL")
    })?;
    let hash = hash_scalar(value, data_type)?;
    let cascade = match call.text(2, "cascade_option")? {
        None => false,
        Some(option) if option.is_empty() => false,
        Some(option) if option.eq_ignore_ascii_case("cascade") => true,
        Some(other) => {
            return Err(SchedulerError::invalid(format!(
                "isolate_tenant_to_new_shard: cascade_option must be 'CASCADE' or '', not \
                 '{other}'"
            )));
        }
    };
    if let Some(mode) = call.text(3, "shard_transfer_mode")?
        && !TRANSFER_MODES.contains(&mode.to_ascii_lowercase().as_str())
    {
        return Err(SchedulerError::invalid(format!(
            "isolate_tenant_to_new_shard: shard_transfer_mode must be one of {}, not '{mode}'",
            TRANSFER_MODES.join(", ")
        )));
    }
    let colocated: Vec<&str> = snapshot
        .tables
        .values()
        .filter(|t| t.name != table && t.kind.colocation_id() == Some(*colocation_id))
        .map(|t| t.name.as_str())
        .collect();
    if !colocated.is_empty() && !cascade {
        return Err(SchedulerError::invalid(format!(
            "cannot isolate tenant because \"{table}\" has colocated tables ({}); use \
             cascade_option => 'CASCADE' to isolate the tenant in all of them: \
             isolate_tenant_to_new_shard('{table}', <tenant>, 'CASCADE')",
            colocated.join(", ")
        )));
    }
    let cluster = coordinator.cluster();
    let plan = cluster.catalog.plan_isolation(&table, hash)?;
    crate::write::reshard::carry_out(coordinator, &plan).await?;
    let tenant_shard = plan
        .tables
        .iter()
        .filter(|t| t.table_name == table)
        .flat_map(|t| &t.shards)
        .find(|s| s.hash_range == Some((hash, hash)))
        .ok_or_else(|| SchedulerError::cluster_state("the isolated tenant has no shard"))?;
    Ok(single_value(
        "isolate_tenant_to_new_shard",
        DataType::Int64,
        Arc::new(Int64Array::from(vec![tenant_shard.shard_id.0])),
    ))
}
