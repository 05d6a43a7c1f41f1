//! `PRIMARY KEY` and `UNIQUE` in `CREATE TABLE`, as column options or table constraints:
//! taken out of the statement before DataFusion plans it and recorded in the catalog with
//! the table ([`shardfusion_catalog::unique_key_store`]), named as PostgreSQL names them
//! (`<table>_pkey`, `<table>_<columns>_key`). The writers enforce them
//! ([`crate::write::unique_keys`]); a primary key's columns are `NOT NULL`.

use datafusion::sql::sqlparser::ast::{
    ColumnOption, ConstraintCharacteristics, CreateTable, Expr, Ident, NullsDistinctOption,
    TableConstraint,
};
use shardfusion_catalog::unique_key_store::UniqueKey;

use crate::error::{Result, SchedulerError};
use crate::session::foreign_keys::normalized;

/// Takes the primary key and unique constraints out of `create` (a table called `table`).
pub fn take_unique_keys(create: &mut CreateTable, table: &str) -> Result<Vec<UniqueKey>> {
    let mut keys = Vec::new();
    for column in &mut create.columns {
        let mut kept = Vec::with_capacity(column.options.len());
        for option in std::mem::take(&mut column.options) {
            match &option.option {
                ColumnOption::PrimaryKey(c) => {
                    checked(c.characteristics.as_ref(), &NullsDistinctOption::None)?;
                    let name = option.name.as_ref().or(c.name.as_ref());
                    keys.push(key(table, name, vec![normalized(&column.name)], true));
                }
                ColumnOption::Unique(c) => {
                    checked(c.characteristics.as_ref(), &c.nulls_distinct)?;
                    let name = option.name.as_ref().or(c.name.as_ref());
                    keys.push(key(table, name, vec![normalized(&column.name)], false));
                }
                _ => kept.push(option),
            }
        }
        column.options = kept;
    }
    let mut kept = Vec::with_capacity(create.constraints.len());
    for constraint in std::mem::take(&mut create.constraints) {
        match &constraint {
            TableConstraint::PrimaryKey(c) => {
                checked(c.characteristics.as_ref(), &NullsDistinctOption::None)?;
                let columns = key_columns(c.columns.iter().map(|i| &i.column.expr))?;
                keys.push(key(table, c.name.as_ref(), columns, true));
            }
            TableConstraint::Unique(c) => {
                checked(c.characteristics.as_ref(), &c.nulls_distinct)?;
                let columns = key_columns(c.columns.iter().map(|i| &i.column.expr))?;
                keys.push(key(table, c.name.as_ref(), columns, false));
            }
            _ => kept.push(constraint),
        }
    }
    create.constraints = kept;
    Ok(keys)
}

/// Refuses what a key may say but is not enforced here: a deferred check, and `NULLS NOT
/// DISTINCT`.
fn checked(
    characteristics: Option<&ConstraintCharacteristics>,
    nulls: &NullsDistinctOption,
) -> Result<()> {
    if characteristics.is_some_and(|c| c.deferrable == Some(true) || c.initially.is_some()) {
        return Err(SchedulerError::unsupported(
            "DEFERRABLE keys (keys are checked when each statement ends)",
        ));
    }
    if matches!(nulls, NullsDistinctOption::NotDistinct) {
        return Err(SchedulerError::unsupported(
            "UNIQUE NULLS NOT DISTINCT (NULLs never conflict)",
        ));
    }
    Ok(())
}

fn key(table: &str, name: Option<&Ident>, columns: Vec<String>, primary: bool) -> UniqueKey {
    let name = name.map_or_else(
        || match primary {
            true => format!("{table}_pkey"),
            false => format!("{table}_{}_key", columns.join("_")),
        },
        normalized,
    );
    UniqueKey {
        name,
        columns,
        primary,
    }
}

/// The columns of a key: plain column names only (PostgreSQL's expression indexes are not
/// constraints).
fn key_columns<'a>(exprs: impl Iterator<Item = &'a Expr>) -> Result<Vec<String>> {
    exprs
        .map(|e| match e {
            Expr::Identifier(ident) => Ok(normalized(ident)),
            other => Err(SchedulerError::unsupported(format!(
                "a key on the expression {other}; name columns, as in PRIMARY KEY (a, b)"
            ))),
        })
        .collect()
}
