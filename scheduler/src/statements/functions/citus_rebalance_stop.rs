//! `citus_rebalance_stop()`: the background rebalance starts no more moves; those running
//! finish (each commits or leaves its old placement serving). Fails when no job runs.

use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::void_result;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_rebalance_stop"],
    superuser_only: true,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(0)?;
    if !coordinator.cluster().moves.job.stop() {
        return Err(SchedulerError::cluster_state(
            "no rebalance is running (see citus_rebalance_status())",
        ));
    }
    Ok(void_result(&call.name))
}
