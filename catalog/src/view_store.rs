//! Views (`CREATE [OR REPLACE] VIEW name AS query`): a name for a query, kept as its SQL text
//! and listed in the [`CatalogSnapshot`](crate::model::CatalogSnapshot). The coordinator plans
//! the text wherever the view is named, so a view reads the tables as they are then, and its
//! query is planned (and distributed) with the statement that uses it. Views share their
//! namespace with tables and sequences, as PostgreSQL's relations do.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::CatalogError;
use crate::store::{Catalog, table_id_of};

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS views (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
"#;

/// Every view's definition, by name.
pub(crate) fn load(conn: &Connection) -> Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare("SELECT name, definition FROM views")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Whether a view is called `name`.
pub(crate) fn view_exists(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM views WHERE name = ?1", params![name], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .is_some())
}

impl Catalog {
    /// Records view `name` as `definition` (replacing one of that name if `or_replace`).
    pub fn create_view(&self, name: &str, definition: &str, or_replace: bool) -> Result<()> {
        self.write(|tx| {
            let sequence: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM user_sequences WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            let taken = table_id_of(tx, name)?.is_some()
                || sequence.is_some()
                || (view_exists(tx, name)? && !or_replace);
            if taken {
                return Err(CatalogError::TableExists {
                    name: name.to_string(),
                });
            }
            tx.execute(
                "INSERT OR REPLACE INTO views (name, definition) VALUES (?1, ?2)",
                params![name, definition],
            )?;
            Ok(())
        })
    }

    /// Removes view `name`; whether there was one.
    pub fn drop_view(&self, name: &str) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("DELETE FROM views WHERE name = ?1", params![name])? > 0))
    }
}
