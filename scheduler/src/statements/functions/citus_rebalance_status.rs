//! `citus_rebalance_status()`: the background rebalance (the current one, or the last):
//! `job_id, state, job_type, description, started_at, finished_at, details`, with `details`
//! a JSON object of the moves planned and done (and the error of a failed job).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::rows;
use crate::cluster::Cluster;
use crate::coordinator::StatementOutput;
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["citus_rebalance_status"],
    superuser_only: false,
    rows: Some(rows_of),
    run: |coordinator, call| async move { rows_of(coordinator.cluster(), &call) }.boxed(),
};

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn rows_of(cluster: &Arc<Cluster>, call: &FunctionCall) -> Result<StatementOutput> {
    call.check_arity(1)?;
    let status: Vec<_> = cluster.moves.job.status().into_iter().collect();
    let timestamps = |values: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
    };
    let details = status.iter().map(|s| {
        let error = s
            .error
            .as_ref()
            .map(|e| format!(", \"error\": {}", serde_json::Value::String(e.clone())))
            .unwrap_or_default();
        format!(
            "{{\"tasks\": {}, \"done\": {}, \"remaining\": {}{error}}}",
            s.planned,
            s.done,
            s.planned.saturating_sub(s.done)
        )
    });
    rows(vec![
        (
            "job_id",
            Arc::new(Int64Array::from_iter_values(
                status.iter().map(|s| s.job_id),
            )),
        ),
        (
            "state",
            Arc::new(StringArray::from_iter_values(
                status.iter().map(|s| s.state.name()),
            )),
        ),
        (
            "job_type",
            Arc::new(StringArray::from_iter_values(
                status.iter().map(|_| "rebalance"),
            )),
        ),
        (
            "description",
            Arc::new(StringArray::from_iter_values(
                status.iter().map(|s| s.description.clone()),
            )),
        ),
        (
            "started_at",
            timestamps(status.iter().map(|s| Some(millis(s.started_at))).collect()),
        ),
        (
            "finished_at",
            timestamps(status.iter().map(|s| s.finished_at.map(millis)).collect()),
        ),
        ("details", Arc::new(StringArray::from_iter_values(details))),
    ])
}
