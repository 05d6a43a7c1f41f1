//! The results Citus functions return: one value, `void`, or rows.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::coordinator::StatementOutput;

/// One row with one column `name` holding `value`.
pub(super) fn single_value(name: &str, data_type: DataType, value: ArrayRef) -> StatementOutput {
    let schema = Arc::new(Schema::new(vec![Field::new(name, data_type, true)]));
    match RecordBatch::try_new(Arc::clone(&schema), vec![value]) {
        Ok(batch) => StatementOutput::Rows {
            schema,
            batches: vec![batch],
        },
        Err(_) => StatementOutput::empty(),
    }
}

/// Citus's `void` result: one row with an empty value.
pub(super) fn void_result(name: &str) -> StatementOutput {
    single_value(name, DataType::Utf8, Arc::new(StringArray::from(vec![""])))
}

/// Rows with the named columns (each column nullable).
pub(super) fn rows(columns: Vec<(&str, ArrayRef)>) -> crate::error::Result<StatementOutput> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, values)| Field::new(*name, values.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        columns.into_iter().map(|(_, values)| values).collect(),
    )
    .map_err(|e| crate::error::SchedulerError::DataFusion(e.into()))?;
    Ok(StatementOutput::Rows {
        schema,
        batches: vec![batch],
    })
}
