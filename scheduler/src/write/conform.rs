//! [`Conformer`]: turns incoming rows (from COPY files or bulk ingest) into a table's schema.
//!
//! Columns are matched by name (case-insensitively) or by position, cast with errors instead of
//! silent NULLs, and checked against NOT NULL. Table columns missing from the input take their
//! default ([`Conformer::with_defaults`]), or NULL.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;

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
    /// For each target column, its default, used when no input column feeds it.
    defaults: Vec<Option<Arc<dyn PhysicalExpr>>>,
}

impl Conformer {
    /// Maps `input` onto `target`; columns of `target` the input lacks are NULL.
    pub fn try_new(table: &str, target: SchemaRef, input: &SchemaRef, by: MatchBy) -> Result<Self> {
        Self::with_defaults(table, target, input, by, &[])
    }

    /// As [`Self::try_new`], filling columns the input lacks from `defaults` (by column
    /// name; expressions over no columns, cast to the column's type).
    pub fn with_defaults(
        table: &str,
        target: SchemaRef,
        input: &SchemaRef,
        by: MatchBy,
        defaults: &[(String, Arc<dyn PhysicalExpr>)],
    ) -> Result<Self> {
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
        let defaults: Vec<Option<Arc<dyn PhysicalExpr>>> = target
            .fields()
            .iter()
            .map(|f| {
                defaults
                    .iter()
                    .find(|(column, _)| column == f.name())
                    .map(|(_, expr)| Arc::clone(expr))
            })
            .collect();
        for ((field, source), default) in target.fields().iter().zip(&sources).zip(&defaults) {
            if source.is_none() && default.is_none() && !field.is_nullable() {
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
            defaults,
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
        let fields = self.target.fields().iter().zip(&self.sources);
        for ((field, source), default) in fields.zip(&self.defaults) {
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
                None => match default {
                    Some(expr) => self.default_values(field, expr, rows)?,
                    None => new_null_array(field.data_type(), rows),
                },
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

impl Conformer {
    /// `rows` values of `field`'s default `expr`.
    fn default_values(
        &self,
        field: &Field,
        expr: &Arc<dyn PhysicalExpr>,
        rows: usize,
    ) -> Result<ArrayRef> {
        let no_columns = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| SchedulerError::invalid(e.to_string()))?;
        let values = expr.evaluate(&no_columns)?.into_array(rows)?;
        if values.data_type() == field.data_type() {
            return Ok(values);
        }
        cast_with_options(&values, field.data_type(), &CastOptions::default()).map_err(|e| {
            SchedulerError::invalid(format!(
                "the default of column \"{}\" of table \"{}\" does not convert to {}: {e}",
                field.name(),
                self.table,
                field.data_type()
            ))
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
