//! [`Conformer`]: turns incoming rows (from COPY files or bulk ingest) into a table's schema.
//!
//! Columns are matched by name (case-insensitively) or by position, cast with errors instead of
//! silent NULLs, and checked against NOT NULL. Table columns missing from the input become NULL.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{Result, SchedulerError};

/// How input columns find their table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchBy {
    Name,
    Position,
}

/// Maps batches of one input schema onto a table schema.
#[derive(Debug, Clone)]
pub struct Conformer {
    table: String,
    target: SchemaRef,
    /// For each target column, the input column that feeds it.
    sources: Vec<Option<usize>>,
}

impl Conformer {
    pub fn try_new(table: &str, target: SchemaRef, input: &SchemaRef, by: MatchBy) -> Result<Self> {
        let sources: Vec<Option<usize>> = match by {
            MatchBy::Position => {
                if input.fields().len() > target.fields().len() {
                    return Err(SchedulerError::invalid(format!(
                        "the input has {} columns but table \"{table}\" has only {}",
                        input.fields().len(),
                        target.fields().len()
                    )));
                }
                (0..target.fields().len())
                    .map(|i| (i < input.fields().len()).then_some(i))
                    .collect()
            }
            MatchBy::Name => {
                for field in input.fields() {
                    if find(&target, field.name()).is_none() {
                        return Err(SchedulerError::invalid(format!(
                            "column \"{}\" of the input does not exist in table \"{table}\" \
                             (its columns are: {})",
                            field.name(),
                            target
                                .fields()
                                .iter()
                                .map(|f| f.name().as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                }
                target
                    .fields()
                    .iter()
                    .map(|f| find(input, f.name()))
                    .collect()
            }
        };
        for (field, source) in target.fields().iter().zip(&sources) {
            if source.is_none() && !field.is_nullable() {
                return Err(SchedulerError::invalid(format!(
                    "column \"{}\" of table \"{table}\" is NOT NULL but the input does not \
                     provide it",
                    field.name()
                )));
            }
        }
        Ok(Self {
            table: table.to_string(),
            target,
            sources,
        })
    }

    /// Converts one batch.
    pub fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.sources.len());
        for (field, source) in self.target.fields().iter().zip(&self.sources) {
            let column = match source {
                Some(i) => {
                    let input = batch.column(*i);
                    if input.data_type() == field.data_type() {
                        Arc::clone(input)
                    } else {
                        cast_with_options(input, field.data_type(), &options).map_err(|e| {
                            SchedulerError::invalid(format!(
                                "column \"{}\" of table \"{}\" is {}: cannot convert the input's \
                                 {} values: {e}",
                                field.name(),
                                self.table,
                                field.data_type(),
                                input.data_type()
                            ))
                        })?
                    }
                }
                None => new_null_array(field.data_type(), rows),
            };
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(SchedulerError::NotNull {
                    table: self.table.clone(),
                    column: field.name().clone(),
                });
            }
            columns.push(column);
        }
        RecordBatch::try_new_with_options(
            Arc::clone(&self.target),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| {
            SchedulerError::invalid(format!("rows do not fit table \"{}\": {e}", self.table))
        })
    }
}

fn find(schema: &SchemaRef, name: &str) -> Option<usize> {
    schema
        .fields()
        .iter()
        .position(|f| f.name() == name)
        .or_else(|| {
            schema
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(name))
        })
}
