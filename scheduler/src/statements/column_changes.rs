//! `ALTER TABLE ... ADD COLUMN ... DEFAULT`, `DROP COLUMN` and `RENAME COLUMN`, as PostgreSQL
//! runs them: the rows a table holds take the default, lose the column, or keep their values
//! under the new name. The catalog's columns change
//! ([`shardfusion_catalog::column_changes`]) and every file of the table is rewritten into
//! them ([`crate::write::column_rewrite`]) in one transaction (the statement's, or one of its
//! own), so readers see the table before or after, never between.
//!
//! The keys, indexes and checks on a column follow it, as in PostgreSQL: dropped with it, or
//! renamed in them. A column a foreign key or the distribution uses is neither dropped nor
//! renamed (SQLSTATE 2BP01, naming what holds it); `CASCADE` is not supported.

use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::logical_expr::{Expr, col};
use datafusion::sql::sqlparser::ast::Ident;
use shardfusion_catalog::column_changes::column_held_by;
use shardfusion_catalog::column_default_store::ColumnDefault;
use shardfusion_catalog::{Catalog, CatalogError, TableMeta};
use shardfusion_common::status::with_sqlstate;

use crate::coordinator::Coordinator;
use crate::error::{Result, SchedulerError};
use crate::session::check_constraints::{reads_column, with_column_renamed};
use crate::session::foreign_keys::normalized;
use crate::session::transaction::statement_snapshot;
use crate::write::column_rewrite::{changed_schema, rewrite_columns};

/// The table as the statement's transaction sees it, files included.
fn table_now(coordinator: &Coordinator, name: &str) -> Result<Arc<TableMeta>> {
    statement_snapshot(coordinator.cluster())?
        .table(name)
        .cloned()
        .ok_or_else(|| {
            CatalogError::TableNotFound {
                name: name.to_string(),
            }
            .into()
        })
}

/// The old row's columns, each as itself.
fn same_columns(table: &TableMeta) -> Vec<Expr> {
    (table.schema.fields().iter())
        .map(|f| col(datafusion::common::Column::from_name(f.name())))
        .collect()
}

/// `ADD COLUMN field DEFAULT default`: the rows the table holds take the default.
pub async fn add_column_with_default(
    coordinator: &Coordinator,
    catalog: &Catalog,
    name: &str,
    field: Field,
    default: &str,
) -> Result<()> {
    let cluster = coordinator.cluster();
    let table = table_now(coordinator, name)?;
    if table.schema.column_with_name(field.name()).is_some() {
        return Err(CatalogError::ColumnExists {
            table: name.to_string(),
            column: field.name().clone(),
        }
        .into());
    }
    cluster
        .default_expressions
        .check(field.name(), default, field.data_type())?;
    let value = cluster.default_expressions.plan(default)?;
    let column = field.name().clone();
    let new_schema = changed_schema(&table, |fields| fields.push(field));
    let recorded = ColumnDefault::new(&column, default, None);
    catalog.change_columns(name, &new_schema, Some(&recorded), None)?;
    let mut columns = same_columns(&table);
    columns.push(value);
    rewrite_columns(coordinator, &table, new_schema, columns).await?;
    Ok(())
}

/// `DROP COLUMN [IF EXISTS] a, b`.
pub async fn drop_columns(
    coordinator: &Coordinator,
    catalog: &Catalog,
    name: &str,
    columns: &[Ident],
    if_exists: bool,
) -> Result<()> {
    let table = table_now(coordinator, name)?;
    let snapshot = statement_snapshot(coordinator.cluster())?;
    let mut dropped = Vec::new();
    for column in columns.iter().map(normalized) {
        if table.schema.column_with_name(&column).is_none() {
            if if_exists {
                continue;
            }
            return Err(CatalogError::ColumnNotFound {
                table: name.to_string(),
                column,
            }
            .into());
        }
        refuse_if_held(&snapshot, &table, &column, "drop")?;
        // Its keys, indexes and checks go with it, as in PostgreSQL.
        let checks: Vec<String> = (table.checks.iter())
            .filter(|c| reads_column(c, &column))
            .map(|c| c.name.clone())
            .collect();
        catalog.drop_dependents_of_column(name, &column, &checks)?;
        dropped.push(column);
    }
    if dropped.is_empty() {
        return Ok(());
    }
    if dropped.len() == table.schema.fields().len() {
        return Err(SchedulerError::unsupported(
            "dropping every column of a table; drop the table",
        ));
    }
    let new_schema = changed_schema(&table, |fields| {
        fields.retain(|f| !dropped.contains(f.name()));
    });
    catalog.change_columns(name, &new_schema, None, None)?;
    let columns = (table.schema.fields().iter())
        .filter(|f| !dropped.contains(f.name()))
        .map(|f| col(datafusion::common::Column::from_name(f.name())))
        .collect();
    rewrite_columns(coordinator, &table, new_schema, columns).await?;
    Ok(())
}

/// `RENAME COLUMN from TO to`.
pub async fn rename_column(
    coordinator: &Coordinator,
    catalog: &Catalog,
    name: &str,
    from: &Ident,
    to: &Ident,
) -> Result<()> {
    let (from, to) = (normalized(from), normalized(to));
    let table = table_now(coordinator, name)?;
    if table.schema.column_with_name(&from).is_none() {
        return Err(CatalogError::ColumnNotFound {
            table: name.to_string(),
            column: from,
        }
        .into());
    }
    if table.schema.column_with_name(&to).is_some() {
        return Err(CatalogError::ColumnExists {
            table: name.to_string(),
            column: to,
        }
        .into());
    }
    let snapshot = statement_snapshot(coordinator.cluster())?;
    refuse_if_held(&snapshot, &table, &from, "rename")?;
    // Its keys, indexes and checks follow it.
    let checks: Vec<(String, String)> = (table.checks.iter())
        .filter_map(|c| with_column_renamed(c, &from, &to).map(|e| (c.name.clone(), e)))
        .collect();
    catalog.rename_in_dependents(name, &from, &to, &checks)?;
    let new_schema = changed_schema(&table, |fields| {
        for field in fields.iter_mut().filter(|f| *f.name() == from) {
            *field = field.clone().with_name(to.clone());
        }
    });
    catalog.change_columns(name, &new_schema, None, Some((&from, &to)))?;
    rewrite_columns(coordinator, &table, new_schema, same_columns(&table)).await?;
    Ok(())
}

/// Refuses to `what` (drop, rename) `column` of `table` while something holds it.
fn refuse_if_held(
    snapshot: &shardfusion_catalog::CatalogSnapshot,
    table: &TableMeta,
    column: &str,
    what: &str,
) -> Result<()> {
    match column_held_by(snapshot, table, column) {
        Some(reason) => Err(SchedulerError::BadValue(with_sqlstate(
            tonic::Status::failed_precondition(format!(
                "cannot {what} column \"{column}\" of table \"{}\": {reason}",
                table.name
            )),
            "2BP01",
        ))),
        None => Ok(()),
    }
}
