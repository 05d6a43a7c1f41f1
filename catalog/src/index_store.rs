//! Indexes (`CREATE INDEX name ON table (columns)`): recorded with their table and listed in
//! its [`TableMeta`](crate::model::TableMeta). ShardFusion has no B-trees: an index makes the
//! files written for its table carry a Parquet bloom filter for each indexed column (every
//! column already has page-level min/max statistics), so a point lookup on it skips the row
//! groups that cannot hold the value. Index names are unique in the database, as PostgreSQL's
//! are in a schema.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::error::CatalogError;
use crate::store::{Catalog, table_id_of};

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS indexes (
    table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
    name TEXT NOT NULL UNIQUE,
    columns TEXT NOT NULL,
    method TEXT NOT NULL,
    PRIMARY KEY (table_id, name)
);
"#;

/// One index of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableIndex {
    pub name: String,
    /// The indexed columns, in order.
    pub columns: Vec<String>,
    /// The access method named (`btree` unless given), as `pg_indexes` shows it.
    pub method: String,
}

/// Every table's indexes, by table id, by name.
pub(crate) fn load(conn: &Connection) -> Result<BTreeMap<i64, Vec<TableIndex>>> {
    let mut stmt = conn
        .prepare("SELECT table_id, name, columns, method FROM indexes ORDER BY table_id, name")?;
    let rows = stmt.query_map([], |r| {
        let columns: String = r.get(2)?;
        Ok((
            r.get::<_, i64>(0)?,
            TableIndex {
                name: r.get(1)?,
                columns: serde_json::from_str(&columns).unwrap_or_default(),
                method: r.get(3)?,
            },
        ))
    })?;
    crate::store::by_table(rows)
}

fn index_exists(tx: &Transaction<'_>, name: &str) -> Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM indexes WHERE name = ?1",
            params![name],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .is_some())
}

impl Catalog {
    /// Records `index` on table `table`; whether it was new (`false`: an index of that name
    /// exists and `if_not_exists` was given).
    pub fn create_index(
        &self,
        table: &str,
        index: &TableIndex,
        if_not_exists: bool,
    ) -> Result<bool> {
        self.write(|tx| {
            let id = crate::store::existing_table_id(tx, table)?;
            if index_exists(tx, &index.name)? || table_id_of(tx, &index.name)?.is_some() {
                if if_not_exists {
                    return Ok(false);
                }
                return Err(CatalogError::TableExists {
                    name: index.name.clone(),
                });
            }
            tx.execute(
                "INSERT INTO indexes (table_id, name, columns, method) VALUES (?1, ?2, ?3, ?4)",
                params![
                    id.0,
                    index.name,
                    serde_json::to_string(&index.columns).unwrap_or_default(),
                    index.method
                ],
            )?;
            Ok(true)
        })
    }

    /// Removes index `name` (and the unique constraint a `CREATE UNIQUE INDEX` of that name
    /// added); whether there was one.
    pub fn drop_index(&self, name: &str) -> Result<bool> {
        self.write(|tx| {
            let table: Option<i64> = tx
                .query_row(
                    "SELECT table_id FROM indexes WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(table) = table else {
                return Ok(false);
            };
            tx.execute("DELETE FROM indexes WHERE name = ?1", params![name])?;
            tx.execute(
                "DELETE FROM unique_keys WHERE table_id = ?1 AND name = ?2 AND is_primary = 0",
                params![table, name],
            )?;
            Ok(true)
        })
    }

    /// `base` if no index or table has that name, else `base1`, `base2`, ... (as PostgreSQL
    /// names an unnamed index whose name is taken).
    pub fn free_index_name(&self, base: &str) -> Result<String> {
        self.write(|tx| {
            for n in 0.. {
                let name = match n {
                    0 => base.to_string(),
                    n => format!("{base}{n}"),
                };
                if !index_exists(tx, &name)? && table_id_of(tx, &name)?.is_none() {
                    return Ok(name);
                }
            }
            unreachable!("some name is free")
        })
    }
}
