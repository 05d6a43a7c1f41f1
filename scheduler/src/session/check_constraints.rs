//! `CHECK` constraints, as PostgreSQL has them: declared on a column or the table in `CREATE
//! TABLE` (taken out of the statement before DataFusion plans it, named `<table>_<column>_check`
//! unless named) or added by `ALTER TABLE ... ADD CONSTRAINT ... CHECK (...)` (once every stored
//! row passes), recorded in the catalog ([`shardfusion_catalog::check_constraint_store`]), and
//! evaluated by the coordinator on every row a write adds ([`Checks`]): `INSERT`, `COPY`, bulk
//! ingest, and the new rows of `UPDATE` and upserts. A row passes unless a condition is false
//! (NULL passes); one that does not fails the statement with SQLSTATE 23514, naming the
//! constraint, and nothing is written.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, Expr, Ident, TableConstraint, Visit, Visitor,
};
use shardfusion_catalog::TableMeta;
use shardfusion_catalog::check_constraint_store::CheckConstraint;

use crate::error::{Result, SchedulerError};
use crate::session::foreign_keys::normalized;

/// Takes the `CHECK` constraints out of `create` (a table called `table`).
pub fn take_checks(create: &mut CreateTable, table: &str) -> Result<Vec<CheckConstraint>> {
    let mut checks: Vec<CheckConstraint> = Vec::new();
    for column in &mut create.columns {
        let mut kept = Vec::with_capacity(column.options.len());
        for option in std::mem::take(&mut column.options) {
            match &option.option {
                ColumnOption::Check(check) => {
                    let name = option.name.as_ref().or(check.name.as_ref());
                    let column = normalized(&column.name);
                    checks.push(named(table, name, Some(column), &check.expr, &checks));
                }
                _ => kept.push(option),
            }
        }
        column.options = kept;
    }
    let mut kept = Vec::with_capacity(create.constraints.len());
    for constraint in std::mem::take(&mut create.constraints) {
        match &constraint {
            TableConstraint::Check(check) => {
                let column = only_column(&check.expr);
                checks.push(named(
                    table,
                    check.name.as_ref(),
                    column,
                    &check.expr,
                    &checks,
                ));
            }
            _ => kept.push(constraint),
        }
    }
    create.constraints = kept;
    Ok(checks)
}

/// A check of `table` on `expr`, named `name`, or as PostgreSQL names it: after the one
/// column it reads (`<table>_<column>_check`), else `<table>_check`, then `..._check1`, ...
/// if `taken` has it.
pub fn named(
    table: &str,
    name: Option<&Ident>,
    column: Option<String>,
    expr: &Expr,
    taken: &[CheckConstraint],
) -> CheckConstraint {
    let name = match name {
        Some(name) => normalized(name),
        None => {
            let base = match column {
                Some(column) => format!("{table}_{column}_check"),
                None => format!("{table}_check"),
            };
            let free = |n: &String| !taken.iter().any(|c| c.name == *n);
            std::iter::once(base.clone())
                .chain((1..).map(|i| format!("{base}{i}")))
                .find(free)
                .unwrap_or(base)
        }
    };
    CheckConstraint {
        name,
        expression: expr.to_string(),
    }
}

/// The columns `expr` reads, each once, in order.
fn columns_read(expr: &Expr) -> Vec<String> {
    struct Columns(Vec<String>);
    impl Visitor for Columns {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
            let name = match expr {
                Expr::Identifier(ident) => Some(normalized(ident)),
                Expr::CompoundIdentifier(parts) => parts.last().map(normalized),
                _ => None,
            };
            if let Some(name) = name.filter(|n| !self.0.contains(n)) {
                self.0.push(name);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut columns = Columns(Vec::new());
    let _ = expr.visit(&mut columns);
    columns.0
}

/// The column `expr` reads, if it reads exactly one (PostgreSQL names a check after it).
pub fn only_column(expr: &Expr) -> Option<String> {
    match columns_read(expr).as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// A table's checks, ready to evaluate over batches of its rows.
pub struct Checks {
    table: String,
    checks: Vec<(String, Arc<dyn PhysicalExpr>)>,
}

impl Checks {
    /// The checks of `table` over rows of its schema; `None` if it has none. A check that no
    /// longer plans over the table's columns is reported as such.
    pub fn of(table: &TableMeta) -> Result<Option<Self>> {
        if table.checks.is_empty() {
            return Ok(None);
        }
        Self::compile(&table.name, &table.schema, &table.checks).map(Some)
    }

    /// `checks` of `table` over rows of `schema`.
    pub fn compile(table: &str, schema: &Schema, checks: &[CheckConstraint]) -> Result<Self> {
        // One planning state for every compile: a writer compiles its table's checks per
        // statement, and a fresh session registers every function again.
        static STATE: std::sync::OnceLock<datafusion::execution::SessionState> =
            std::sync::OnceLock::new();
        let state = STATE.get_or_init(|| SessionContext::new().state());
        let row = DFSchema::try_from(schema.clone())?;
        let checks = checks
            .iter()
            .map(|check| {
                let expr = state
                    .create_logical_expr(&check.expression, &row)
                    .and_then(|e| {
                        let data_type =
                            datafusion::logical_expr::ExprSchemable::get_type(&e, &row)?;
                        if data_type != DataType::Boolean && data_type != DataType::Null {
                            return Err(datafusion::error::DataFusionError::Plan(format!(
                                "argument of CHECK must be type boolean, not type {data_type}"
                            )));
                        }
                        state.create_physical_expr(e, &row)
                    })
                    .map_err(|e| {
                        SchedulerError::invalid(format!(
                            "check constraint \"{}\" ({}) of \"{table}\" does not apply to its \
                             columns: {e}",
                            check.name, check.expression
                        ))
                    })?;
                Ok((check.name.clone(), expr))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            table: table.to_string(),
            checks,
        })
    }

    /// Refuses `batch` if a row makes a condition false.
    pub fn check(&self, batch: &RecordBatch) -> Result<()> {
        for (name, expr) in &self.checks {
            let value = expr.evaluate(batch)?.into_array(batch.num_rows())?;
            if value.data_type() != &DataType::Boolean {
                return Err(SchedulerError::invalid(format!(
                    "check constraint \"{name}\" of \"{}\" is not a condition (it is {})",
                    self.table,
                    value.data_type()
                )));
            }
            let passed = value.as_boolean();
            let failed = (0..passed.len()).any(|i| passed.is_valid(i) && !passed.value(i));
            if failed {
                return Err(SchedulerError::CheckViolation {
                    table: self.table.clone(),
                    constraint: name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Whether `check` reads column `column`.
pub fn reads_column(check: &CheckConstraint, column: &str) -> bool {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    match datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(&check.expression)
        .and_then(|mut parser| parser.parse_expr())
    {
        Ok(expr) => columns_read(&expr).iter().any(|c| c == column),
        // A check that does not parse is treated as reading every column.
        Err(_) => true,
    }
}

/// `check`'s expression with column `from` renamed `to`, if it reads `from`.
pub fn with_column_renamed(check: &CheckConstraint, from: &str, to: &str) -> Option<String> {
    use datafusion::sql::sqlparser::ast::VisitMut;
    if !reads_column(check, from) {
        return None;
    }
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let mut expr = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(&check.expression)
        .and_then(|mut parser| parser.parse_expr())
        .ok()?;
    struct Rename<'a>(&'a str, &'a str);
    impl datafusion::sql::sqlparser::ast::VisitorMut for Rename<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
            let ident = match expr {
                Expr::Identifier(ident) => Some(ident),
                Expr::CompoundIdentifier(parts) => parts.last_mut(),
                _ => None,
            };
            if let Some(ident) = ident
                && normalized(ident) == self.0
            {
                *ident = Ident::with_quote('"', self.1);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(&mut expr, &mut Rename(from, to));
    Some(expr.to_string())
}
