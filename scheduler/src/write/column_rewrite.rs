//! Rewriting every file of a table into new columns, for the column changes PostgreSQL makes
//! in place (`ALTER TABLE ... ADD COLUMN ... DEFAULT`, `DROP COLUMN`, `RENAME COLUMN`): the
//! files are read with the old columns and written with the new ones, each new column
//! computed from the old row (a default, the column itself, the column under its new name).
//!
//! Each file is rewritten on the node holding it ([`row_changes::rewrite_rows`], with a target
//! schema), and the new files replace the old ones in the statement's transaction, which also
//! holds the catalog's column change: both commit together, or neither does. The caller fences
//! the table's other writes meanwhile (`ddl::alter_table`), and the commit refuses the change
//! if one slipped in since the transaction read the table. Sequence
//! functions are refused (their values come from the coordinator), and, on a table whose
//! shards have several copies, volatile functions (each copy is rewritten on its own); `now()`
//! is the statement's start time on every node.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, cast, lit};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use shardfusion_catalog::TableMeta;
use shardfusion_common::wire::CHANGED_COLUMN;

use crate::coordinator::Coordinator;
use crate::error::{Result, SchedulerError};
use crate::session::sequence_functions;
use crate::session::statement_context::session_for;
use crate::session::transaction::statement_snapshot;
use crate::write::row_changes::{RowRewrite, rewrite_rows};

/// Rewrites every file of `table` (as it was before the change) into `new_schema`, column `i`
/// computed by `columns[i]` over the old row; must run in the transaction that changes the
/// catalog's columns. Returns the rows rewritten.
pub async fn rewrite_columns(
    coordinator: &Coordinator,
    table: &Arc<TableMeta>,
    new_schema: SchemaRef,
    columns: Vec<Expr>,
) -> Result<u64> {
    if crate::session::transaction::current().is_none() {
        return Err(SchedulerError::invalid(
            "a column change rewrites the table's files in its transaction",
        ));
    }
    let cluster = coordinator.cluster();
    let snapshot = statement_snapshot(cluster)?;
    let session = session_for(cluster, Arc::clone(&snapshot))?;
    let state = session.state();
    let old_row = DFSchema::try_from(table.schema.as_ref().clone())?;
    let started = SimplifyContext::builder()
        .with_current_time()
        .build()
        .query_execution_start_time();
    let replicated = table.shards.iter().any(|s| s.placements.len() > 1);
    let mut projection = Vec::with_capacity(columns.len() + 1);
    for (expr, field) in columns.into_iter().zip(new_schema.fields()) {
        if sequence_functions::calls_sequence_function_in(&expr) {
            return Err(SchedulerError::unsupported(format!(
                "a sequence function ({expr}) filling a column of a table with rows: its values \
                 are handed out on the coordinator, and files are rewritten on the workers"
            )));
        }
        if replicated && expr.is_volatile() {
            return Err(SchedulerError::invalid(format!(
                "functions filling a column of {}, which has a copy on several nodes, must not \
                 be VOLATILE: {expr}",
                table.name
            )));
        }
        let context = SimplifyContext::builder()
            .with_schema(Arc::new(old_row.clone()))
            .with_config_options(Arc::clone(state.config_options()))
            .with_query_execution_start_time(started)
            .build();
        let simplifier = ExprSimplifier::new(context);
        let expr = cast(expr, field.data_type().clone());
        let expr = simplifier.simplify(simplifier.coerce(expr, &old_row)?)?;
        let physical = state.create_physical_expr(expr, &old_row)?;
        projection.push(ProjectionExpr::new(physical, field.name().clone()));
    }
    let changed = state.create_physical_expr(lit(true), &old_row)?;
    projection.push(ProjectionExpr::new(changed, CHANGED_COLUMN.to_string()));
    let rewrite = IntoColumns {
        projection,
        new_schema,
    };
    rewrite_rows(
        coordinator,
        snapshot,
        session.task_ctx(),
        table,
        None,
        &rewrite,
        false,
    )
    .await
}

/// `table`'s columns as they are after a change: the old schema's fields with `change`
/// applied (nullability and types kept).
pub fn changed_schema(
    table: &TableMeta,
    change: impl FnOnce(&mut Vec<datafusion::arrow::datatypes::Field>),
) -> SchemaRef {
    let mut fields: Vec<_> = (table.schema.fields().iter())
        .map(|f| f.as_ref().clone())
        .collect();
    change(&mut fields);
    Arc::new(Schema::new(fields))
}

/// Every row of a file, every row changed, into the new columns.
struct IntoColumns {
    projection: Vec<ProjectionExpr>,
    new_schema: SchemaRef,
}

impl RowRewrite for IntoColumns {
    fn over(&self, _: usize, scan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(ProjectionExec::try_new(
            self.projection.clone(),
            scan,
        )?))
    }

    fn target_schema(&self) -> Option<SchemaRef> {
        Some(Arc::clone(&self.new_schema))
    }
}
