//! `citus_rebalance_wait()`: returns once the background rebalance has ended (at once when
//! none runs). A job that failed makes it fail with the job's error, as in Citus.

use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::void_result;
use crate::cluster::rebalance_job::JobState;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_rebalance_wait"],
    superuser_only: false,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(0)?;
    if let Some(status) = coordinator.cluster().moves.job.wait().await
        && status.state == JobState::Failed
    {
        return Err(SchedulerError::invalid(format!(
            "the rebalance job {} failed: {}",
            status.job_id,
            status.error.unwrap_or_default()
        )));
    }
    Ok(void_result(&call.name))
}
