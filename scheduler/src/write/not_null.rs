//! NOT NULL on inserted rows, checked where the rows are written, so that a violation names
//! the table's column.
//!
//! DataFusion checks NOT NULL where it cannot name the column: the rows of
//! `INSERT ... VALUES` are planned as a `VALUES` list that takes the table's nullability but
//! names its columns `column1`, `column2`, ... ("Column 'column1' is declared as non-nullable
//! but contains null values"), and `DataSinkExec` checks its input by position ("Invalid batch
//! column at '0' has null"). So an INSERT is planned with both checks relaxed
//! ([`defer_not_null_checks`] for the `VALUES` list, a [`nullable`] schema for the sink), and
//! [`check_not_null`] runs on every batch the table writer receives, whatever its source
//! (INSERT, COPY, bulk ingest), naming table and column as PostgreSQL does.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::{LogicalPlan, Values, WriteOp};

use crate::error::{Result, SchedulerError};

/// `schema` with every column nullable.
pub fn nullable(schema: &Schema) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// For an INSERT, makes the columns of its `VALUES` lists nullable, so that a NULL reaches the
/// table writer's named check instead of failing as `column1`. Other plans are returned as
/// they are.
pub fn defer_not_null_checks(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    let is_insert = matches!(&plan, LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)));
    if !is_insert {
        return Ok(plan);
    }
    let relaxed = plan.transform_up(|node| match node {
        LogicalPlan::Values(values) => {
            let fields = values
                .schema
                .iter()
                .map(|(qualifier, field)| {
                    let field = field.as_ref().clone().with_nullable(true);
                    (qualifier.cloned(), Arc::new(field))
                })
                .collect();
            let schema = DFSchema::new_with_metadata(fields, values.schema.metadata().clone())?;
            Ok(Transformed::yes(LogicalPlan::Values(Values {
                schema: Arc::new(schema),
                values: values.values,
            })))
        }
        // The nodes above a relaxed `VALUES` derive their nullability from it.
        other => Ok(Transformed::yes(other.recompute_schema()?)),
    })?;
    Ok(relaxed.data)
}

/// Refuses `batch` (in the order of `schema`, the table's) if a NOT NULL column holds a NULL.
pub fn check_not_null(table: &str, schema: &Schema, batch: &RecordBatch) -> Result<()> {
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.is_nullable() && column.logical_null_count() > 0 {
            return Err(SchedulerError::NotNull {
                table: table.to_string(),
                column: field.name().clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn a_null_in_a_not_null_column_names_the_column() {
        let schema = Schema::new(vec![
            Field::new("tenant", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            nullable(&schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![None, Some("b")])),
            ],
        )
        .expect("batch");
        let error = check_not_null("accounts", &schema, &batch).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "null value in column \"tenant\" of table \"accounts\" violates not-null constraint"
        );
        let ok = batch.slice(0, 1);
        assert!(check_not_null("accounts", &schema, &ok).is_ok());
    }
}
