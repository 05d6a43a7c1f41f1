//! `citus_get_active_worker_nodes()` (also `master_get_active_worker_nodes`): the active
//! workers' names and ports.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &[
        "citus_get_active_worker_nodes",
        "master_get_active_worker_nodes",
    ],
    superuser_only: false,
    rows: None,
    run: |coordinator, call| run(coordinator, call).boxed(),
};

async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    call.check_arity(0)?;
    let snapshot = coordinator.cluster().catalog.snapshot();
    let workers = snapshot.active_workers();
    let schema = Arc::new(Schema::new(vec![
        Field::new("node_name", DataType::Utf8, false),
        Field::new("node_port", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                workers.iter().map(|n| n.node_name.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(
                workers.iter().map(|n| i64::from(n.node_port)),
            )),
        ],
    )
    .map_err(|e| SchedulerError::DataFusion(e.into()))?;
    Ok(StatementOutput::Rows {
        schema,
        batches: vec![batch],
    })
}
