//! The privileges a planned statement needs, checked on its logical plan before it runs, so
//! that every table is checked however the statement reached it (joins, subqueries, CTEs,
//! `INSERT ... SELECT`, `EXPLAIN`):
//! - each table scanned needs `SELECT`;
//! - the target of `INSERT`, `UPDATE`, `DELETE` and `TRUNCATE` needs that privilege;
//! - `COPY ... TO` a file, `CREATE TABLE AS` and other DDL need a superuser.
//!
//! The monitoring views stay readable to every role, showing it only its own rows (as
//! PostgreSQL does): a filter is added above their scans, so `EXPLAIN` shows it.
//! - `shardfusion_stat_statements`, `shardfusion_stat_activity`: rows whose `usename` is
//!   the role;
//! - `pg_stats`: the statistics of tables the role may `SELECT`.
//!
//! The `pg_dist_*` and `citus_*` metadata tables are readable by all, as in Citus.

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, WriteOp, lit};
use shardfusion_catalog::metadata_tables::MetadataTable;
use shardfusion_catalog::roles::TablePrivilege;

use crate::auth::principal::Access;
use crate::error::Result;
use crate::monitoring::statement_activity::STAT_ACTIVITY;
use crate::monitoring::statement_stats::STAT_STATEMENTS;

/// The column of the monitoring views naming the role that ran a statement.
pub const USER_NAME_COLUMN: &str = "usename";

/// Checks that `access` may run `plan`, and returns it with the filters that hide other
/// roles' rows of the monitoring views.
pub fn authorize_plan(access: &Access<'_>, plan: LogicalPlan) -> Result<LogicalPlan> {
    if access.is_superuser() {
        return Ok(plan);
    }
    let mut denied = None;
    plan.apply_with_subqueries(|node| {
        let check = match node {
            LogicalPlan::TableScan(scan) => match user_table(access, &scan.table_name) {
                Some(table) => access.require_table(table, TablePrivilege::Select),
                None => Ok(()),
            },
            LogicalPlan::Dml(dml) => match &dml.op {
                WriteOp::Insert(_) => dml_target(access, &dml.table_name, TablePrivilege::Insert),
                WriteOp::Update => dml_target(access, &dml.table_name, TablePrivilege::Update),
                WriteOp::Delete => dml_target(access, &dml.table_name, TablePrivilege::Delete),
                WriteOp::Truncate => dml_target(access, &dml.table_name, TablePrivilege::Truncate),
                other => access.require_superuser(&other.to_string()),
            },
            LogicalPlan::Copy(_) => access.require_superuser("COPY to a server file"),
            LogicalPlan::Ddl(ddl) => access.require_superuser(ddl.name()),
            _ => Ok(()),
        };
        match check {
            Ok(()) => Ok(TreeNodeRecursion::Continue),
            Err(e) => {
                denied = Some(e);
                Ok(TreeNodeRecursion::Stop)
            }
        }
    })?;
    if let Some(denied) = denied {
        return Err(denied);
    }
    let filtered = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(predicate) = visible_rows(access, &scan.table_name) else {
            return Ok(Transformed::no(node));
        };
        let filter = Filter::try_new(predicate, std::sync::Arc::new(node))?;
        Ok(Transformed::yes(LogicalPlan::Filter(filter)))
    })?;
    Ok(filtered.data)
}

/// The catalog table `name` refers to, if it is one (not a metadata or monitoring view).
fn user_table<'a>(access: &Access<'a>, name: &'a TableReference) -> Option<&'a str> {
    if name.schema().is_some_and(|s| s != "public") {
        return None;
    }
    access.snapshot().table(name.table()).map(|_| name.table())
}

fn dml_target(
    access: &Access<'_>,
    table: &TableReference,
    privilege: TablePrivilege,
) -> Result<()> {
    access.require_table(table.table(), privilege)
}

/// The rows of view `name` a non-superuser may see, if it is a view with per-role rows.
fn visible_rows(access: &Access<'_>, name: &TableReference) -> Option<Expr> {
    let table = name.table();
    let column = |c: &str| Expr::Column(Column::new(Some(name.clone()), c));
    if table == STAT_STATEMENTS || table == STAT_ACTIVITY {
        return Some(column(USER_NAME_COLUMN).eq(lit(access.principal().name())));
    }
    if table == MetadataTable::PgStats.name() {
        let readable: Vec<Expr> = access
            .snapshot()
            .tables
            .keys()
            .filter(|t| access.has_table_privilege(t, TablePrivilege::Select))
            .map(|t| lit(t.as_str()))
            .collect();
        return Some(column("tablename").in_list(readable, false));
    }
    None
}
