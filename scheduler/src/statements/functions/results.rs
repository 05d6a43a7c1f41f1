//! The one-row results Citus functions return.

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
