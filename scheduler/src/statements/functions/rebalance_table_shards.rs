//! `rebalance_table_shards([relation] [, threshold] [, max_shard_moves] ... [, drain_only]
//! [, rebalance_strategy])`: makes the moves `get_rebalance_table_shards_plan` lists, one
//! after the other, while queries and writes go on; returns when they are done.

use futures::FutureExt;

use super::call::FunctionCall;
use super::rebalance_options::{plan_options, planned};
use super::registry::CitusFunction;
use super::results::void_result;
use crate::cluster::rebalance_job::run_plan;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["rebalance_table_shards"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(8)?;
    let options = plan_options(&call)?;
    run_plan(
        coordinator.cluster(),
        |snapshot| planned(snapshot, &options),
        1,
    )
    .await?;
    Ok(void_result(&call.name))
}
