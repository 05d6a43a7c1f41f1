//! Foreign keys (`REFERENCES`, `FOREIGN KEY ... REFERENCES`): recorded with the table that
//! declares them, listed in its [`TableMeta`](crate::model::TableMeta) and so in the
//! metadata clients read (Flight SQL's imported and exported keys). They are not enforced:
//! a row whose key has no match is written all the same (as with Citus's
//! `citus.enable_ddl_propagation` off, the application keeps them).
//!
//! The referenced table is kept by id, so renaming it keeps the key; dropping it while
//! another table's key references it is refused, as PostgreSQL refuses it without `CASCADE`.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use shardfusion_common::ids::TableId;

use crate::error::CatalogError;

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS foreign_keys (
    table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    columns TEXT NOT NULL,
    referenced_table_id INTEGER NOT NULL,
    referenced_columns TEXT NOT NULL,
    on_delete TEXT NOT NULL,
    on_update TEXT NOT NULL,
    PRIMARY KEY (table_id, position)
);
"#;

/// One foreign key of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The constraint's name (PostgreSQL's `<table>_<column>_fkey` unless given).
    pub name: String,
    pub columns: Vec<String>,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    /// `NO ACTION`, `CASCADE`, `SET NULL`, ... as declared (not enforced).
    pub on_delete: String,
    pub on_update: String,
}

/// Records `keys` of the new table `table` (id `id`, columns `columns`), checking that each
/// names columns it has, and a table (itself included) with the columns it references.
pub(crate) fn insert_foreign_keys(
    tx: &Transaction<'_>,
    id: TableId,
    table: &str,
    columns: &[String],
    keys: &[ForeignKey],
) -> Result<()> {
    for (position, key) in keys.iter().enumerate() {
        for column in &key.columns {
            if !columns.contains(column) {
                return Err(CatalogError::ColumnNotFound {
                    table: table.to_string(),
                    column: column.clone(),
                });
            }
        }
        let referenced_id = if key.referenced_table == table {
            id
        } else {
            crate::store::table_id_of(tx, &key.referenced_table)?.ok_or_else(|| {
                CatalogError::TableNotFound {
                    name: key.referenced_table.clone(),
                }
            })?
        };
        let referenced_columns: Vec<String> = if referenced_id == id {
            columns.to_vec()
        } else {
            let schema = crate::commit_checks::table_schema(tx, referenced_id, table)?;
            schema.fields().iter().map(|f| f.name().clone()).collect()
        };
        for column in &key.referenced_columns {
            if !referenced_columns.contains(column) {
                return Err(CatalogError::ColumnNotFound {
                    table: key.referenced_table.clone(),
                    column: column.clone(),
                });
            }
        }
        tx.execute(
            "INSERT INTO foreign_keys (table_id, position, name, columns, referenced_table_id, \
             referenced_columns, on_delete, on_update) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id.0,
                position as i64,
                key.name,
                serde_json::to_string(&key.columns).unwrap_or_default(),
                referenced_id.0,
                serde_json::to_string(&key.referenced_columns).unwrap_or_default(),
                key.on_delete,
                key.on_update
            ],
        )?;
    }
    Ok(())
}

/// Every table's foreign keys, by table id, in declaration order.
pub(crate) fn load(conn: &Connection) -> Result<BTreeMap<i64, Vec<ForeignKey>>> {
    let mut stmt = conn.prepare(
        "SELECT k.table_id, k.name, k.columns, t.name, k.referenced_columns, k.on_delete, \
         k.on_update FROM foreign_keys k JOIN tables t ON t.table_id = k.referenced_table_id \
         ORDER BY k.table_id, k.position",
    )?;
    let rows = stmt.query_map([], |r| {
        let columns: String = r.get(2)?;
        let referenced_columns: String = r.get(4)?;
        Ok((
            r.get::<_, i64>(0)?,
            ForeignKey {
                name: r.get(1)?,
                columns: serde_json::from_str(&columns).unwrap_or_default(),
                referenced_table: r.get(3)?,
                referenced_columns: serde_json::from_str(&referenced_columns).unwrap_or_default(),
                on_delete: r.get(5)?,
                on_update: r.get(6)?,
            },
        ))
    })?;
    crate::store::by_table(rows)
}

/// Refuses to drop table `table` while another table's foreign key references it.
pub(crate) fn check_unreferenced(tx: &Transaction<'_>, table: TableId) -> Result<()> {
    let referencing: Option<(String, String, String)> = tx
        .query_row(
            "SELECT t.name, k.name, r.name FROM foreign_keys k \
             JOIN tables t ON t.table_id = k.table_id \
             JOIN tables r ON r.table_id = k.referenced_table_id \
             WHERE k.referenced_table_id = ?1 AND k.table_id <> ?1 LIMIT 1",
            params![table.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match referencing {
        Some((by, constraint, name)) => Err(CatalogError::TableReferenced {
            name,
            by,
            constraint,
        }),
        None => Ok(()),
    }
}
