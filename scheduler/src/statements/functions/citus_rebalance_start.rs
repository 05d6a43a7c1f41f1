//! `citus_rebalance_start([relation] [, drain_only] [, rebalance_strategy] ...
//! [, max_shard_moves => n])`: plans a rebalance and runs it in the background; returns the
//! job id. `max_shard_moves` here is how many shard groups move at once (default 1).
//! Watch it with `citus_rebalance_status()`, wait with `citus_rebalance_wait()`, stop it with
//! `citus_rebalance_stop()`.

use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::DataType;
use futures::FutureExt;

use super::call::{FunctionCall, relation_name};
use super::rebalance_options::{parallel_moves, planned, strategy};
use super::registry::CitusFunction;
use super::results::single_value;
use crate::cluster::rebalance_job::start_job;
use crate::cluster::rebalance_plan::PlanOptions;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_rebalance_start"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(5)?;
    let strategy = strategy(&call, 2)?;
    let options = PlanOptions {
        strategy,
        relation: call.text(0, "relation")?.map(|r| relation_name(&r)),
        drain_only: call.boolean(1, "drain_only")?.unwrap_or(false),
        ..PlanOptions::default()
    };
    let cluster = coordinator.cluster();
    let moves = planned(&cluster.catalog.snapshot(), &options)?;
    let description = format!(
        "Rebalance {} ({} shard group moves)",
        options.relation.as_deref().unwrap_or("all tables"),
        moves.len()
    );
    let job_id = start_job(cluster, moves, parallel_moves(&call)?, description)?;
    Ok(single_value(
        &call.name,
        DataType::Int64,
        Arc::new(Int64Array::from(vec![job_id])),
    ))
}
