//! `REFERENCES` and `FOREIGN KEY (...) REFERENCES` in `CREATE TABLE`: taken out of the
//! statement before DataFusion plans it (it has no foreign keys) and recorded in the catalog
//! with the table ([`shardfusion_catalog::foreign_key_store`]), named as PostgreSQL names
//! them (`<table>_<columns>_fkey`). They are reported in the metadata, not enforced. Without
//! columns, `REFERENCES t` names `t`'s primary key, as in PostgreSQL.

use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, ForeignKeyConstraint, Ident, TableConstraint,
};
use shardfusion_catalog::foreign_key_store::ForeignKey;

use crate::error::{Result, SchedulerError};
use crate::statements::ddl::table_name;

/// Takes the foreign keys out of `create` (a table called `table`).
/// A `REFERENCES t` without columns references `t`'s primary key: `primary_key` gives it
/// (or `None` if `t` has none).
pub fn take_foreign_keys(
    create: &mut CreateTable,
    table: &str,
    primary_key: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Result<Vec<ForeignKey>> {
    let mut keys = Vec::new();
    for column in &mut create.columns {
        let mut kept = Vec::with_capacity(column.options.len());
        for option in std::mem::take(&mut column.options) {
            match option.option {
                ColumnOption::ForeignKey(constraint) => {
                    let name = option.name.as_ref().or(constraint.name.as_ref());
                    let columns = vec![normalized(&column.name)];
                    keys.push(foreign_key(table, name, columns, &constraint, primary_key)?);
                }
                _ => kept.push(option),
            }
        }
        column.options = kept;
    }
    let mut kept = Vec::with_capacity(create.constraints.len());
    for constraint in std::mem::take(&mut create.constraints) {
        match constraint {
            TableConstraint::ForeignKey(constraint) => {
                let columns = constraint.columns.iter().map(normalized).collect();
                keys.push(foreign_key(
                    table,
                    constraint.name.as_ref(),
                    columns,
                    &constraint,
                    primary_key,
                )?);
            }
            other => kept.push(other),
        }
    }
    create.constraints = kept;
    Ok(keys)
}

fn foreign_key(
    table: &str,
    name: Option<&Ident>,
    columns: Vec<String>,
    constraint: &ForeignKeyConstraint,
    primary_key: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Result<ForeignKey> {
    let referenced_table = table_name(&constraint.foreign_table)?;
    let referenced_columns: Vec<String> = if constraint.referred_columns.is_empty() {
        primary_key(&referenced_table).ok_or_else(|| {
            SchedulerError::invalid(format!(
                "there is no primary key for referenced table \"{referenced_table}\": name the \
                 referenced columns, as in REFERENCES {referenced_table} (id)"
            ))
        })?
    } else {
        constraint.referred_columns.iter().map(normalized).collect()
    };
    if referenced_columns.len() != columns.len() {
        return Err(SchedulerError::invalid(format!(
            "number of referencing and referenced columns for foreign key disagree ({} and {})",
            columns.len(),
            referenced_columns.len()
        )));
    }
    let action = |action: &Option<_>| {
        action
            .as_ref()
            .map_or_else(|| "NO ACTION".to_string(), |a| format!("{a}"))
    };
    Ok(ForeignKey {
        name: name.map_or_else(|| format!("{table}_{}_fkey", columns.join("_")), normalized),
        columns,
        referenced_table,
        referenced_columns,
        on_delete: action(&constraint.on_delete),
        on_update: action(&constraint.on_update),
    })
}

/// An identifier as the catalog keeps it: folded to lower case unless quoted.
pub(crate) fn normalized(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}
