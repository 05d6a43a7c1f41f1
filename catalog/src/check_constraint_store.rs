//! `CHECK` constraints: recorded with the table that declares them (or added by `ALTER TABLE
//! ... ADD CONSTRAINT ... CHECK`) and listed in its [`TableMeta`](crate::model::TableMeta),
//! where the coordinator's writers evaluate them on every row they write. The expression is
//! kept as SQL text over the table's columns, as PostgreSQL's `pg_get_constraintdef` shows it.

use std::collections::BTreeMap;

use rusqlite::{Connection, Transaction, params};
use shardfusion_common::ids::TableId;

use crate::error::CatalogError;
use crate::store::Catalog;

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS check_constraints (
    table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    expression TEXT NOT NULL,
    PRIMARY KEY (table_id, name)
);
"#;

/// One `CHECK` constraint of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConstraint {
    /// Its name (PostgreSQL's `<table>_<column>_check` unless given).
    pub name: String,
    /// The condition every row must not make false, as SQL.
    pub expression: String,
}

/// Records `checks` of table `table` (id `id`), refusing a name used twice.
pub(crate) fn insert_checks(
    tx: &Transaction<'_>,
    id: TableId,
    table: &str,
    checks: &[CheckConstraint],
) -> Result<()> {
    for check in checks {
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM check_constraints WHERE table_id = ?1 AND name = ?2) \
             OR EXISTS (SELECT 1 FROM unique_keys WHERE table_id = ?1 AND name = ?2)",
            params![id.0, check.name],
            |r| r.get(0),
        )?;
        if taken {
            return Err(CatalogError::InvalidTableDefinition {
                table: table.to_string(),
                reason: format!("constraint \"{}\" already exists", check.name),
            });
        }
        tx.execute(
            "INSERT INTO check_constraints (table_id, name, expression) VALUES (?1, ?2, ?3)",
            params![id.0, check.name, check.expression],
        )?;
    }
    Ok(())
}

/// Every table's checks, by table id, by name.
pub(crate) fn load(conn: &Connection) -> Result<BTreeMap<i64, Vec<CheckConstraint>>> {
    let mut stmt = conn.prepare(
        "SELECT table_id, name, expression FROM check_constraints ORDER BY table_id, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            CheckConstraint {
                name: r.get(1)?,
                expression: r.get(2)?,
            },
        ))
    })?;
    crate::store::by_table(rows)
}

impl Catalog {
    /// Adds `check` to table `table` (whose rows the caller checked against it).
    pub fn add_check_constraint(&self, table: &str, check: CheckConstraint) -> Result<()> {
        self.write(|tx| {
            let id = crate::store::existing_table_id(tx, table)?;
            insert_checks(tx, id, table, std::slice::from_ref(&check))
        })
    }
}

impl Catalog {
    /// Removes check `name` of table `table`; whether it had one.
    pub fn drop_check_constraint(&self, table: &str, name: &str) -> Result<bool> {
        self.write(|tx| {
            let id = crate::store::existing_table_id(tx, table)?;
            let removed = tx.execute(
                "DELETE FROM check_constraints WHERE table_id = ?1 AND name = ?2",
                params![id.0, name],
            )?;
            Ok(removed > 0)
        })
    }
}
