//! `ALTER TABLE ... ADD COLUMN ... DEFAULT`, `DROP COLUMN` and `RENAME COLUMN` in the catalog:
//! the table's new columns and its column defaults change in one write. The caller rewrites
//! the table's files into the new columns in the same transaction (their commit is one), so
//! no file of the old shape stays listed.
//!
//! As in PostgreSQL, the keys, indexes and checks on a column follow it: a dropped column takes
//! them with it, a renamed one is renamed in them. A column that a foreign key or the
//! distribution names cannot be dropped or renamed here: the error names what holds it.

use arrow::datatypes::Schema;
use rusqlite::params;

use crate::column_default_store::ColumnDefault;
use crate::commit_checks::table_schema;
use crate::error::CatalogError;
use crate::model::{TableKind, TableMeta};
use crate::store::Catalog;
use shardfusion_common::codec::encode_schema;

type Result<T> = std::result::Result<T, CatalogError>;

/// What, if anything, keeps `column` of `table` (in `snapshot`) from being dropped or renamed:
/// the distribution and foreign keys. (Keys, indexes and checks follow the column.)
pub fn column_held_by(
    snapshot: &crate::model::CatalogSnapshot,
    table: &TableMeta,
    column: &str,
) -> Option<String> {
    if let TableKind::Distributed { column: d, .. } = &table.kind
        && d == column
    {
        return Some(format!("it is the distribution column of {}", table.name));
    }
    if let Some(key) = (table.foreign_keys.iter()).find(|k| k.columns.iter().any(|c| c == column)) {
        return Some(format!("foreign key \"{}\" uses it", key.name));
    }
    for other in snapshot.tables.values() {
        if let Some(key) = other.foreign_keys.iter().find(|k| {
            k.referenced_table == table.name && k.referenced_columns.iter().any(|c| c == column)
        }) {
            return Some(format!(
                "foreign key \"{}\" of {} references it",
                key.name, other.name
            ));
        }
    }
    None
}

/// `columns` (a JSON list) with `from` renamed `to`.
fn renamed_in(columns: &str, from: &str, to: &str) -> String {
    let list: Vec<String> = serde_json::from_str(columns).unwrap_or_default();
    let list: Vec<String> = (list.into_iter())
        .map(|c| if c == from { to.to_string() } else { c })
        .collect();
    serde_json::to_string(&list).unwrap_or_default()
}

/// (name, columns as JSON) of each row of `table` (`unique_keys`, `indexes`) of table `id`.
fn named_columns(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    id: shardfusion_common::ids::TableId,
) -> Result<Vec<(String, String)>> {
    let rows = tx
        .prepare(&format!(
            "SELECT name, columns FROM {table} WHERE table_id = ?1"
        ))?
        .query_map(params![id.0], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    Ok(rows)
}

impl Catalog {
    /// Removes the keys and indexes of table `name` that use `column`, and its checks named in
    /// `checks` (those reading it), as a dropped column takes them.
    pub fn drop_dependents_of_column(
        &self,
        name: &str,
        column: &str,
        checks: &[String],
    ) -> Result<()> {
        self.write(|tx| {
            let id = crate::store::existing_table_id(tx, name)?;
            for table in ["unique_keys", "indexes"] {
                for (constraint, columns) in named_columns(tx, table, id)? {
                    let list: Vec<String> = serde_json::from_str(&columns).unwrap_or_default();
                    if list.iter().any(|c| c == column) {
                        tx.execute(
                            &format!("DELETE FROM {table} WHERE table_id = ?1 AND name = ?2"),
                            params![id.0, constraint],
                        )?;
                    }
                }
            }
            for check in checks {
                tx.execute(
                    "DELETE FROM check_constraints WHERE table_id = ?1 AND name = ?2",
                    params![id.0, check],
                )?;
            }
            Ok(())
        })
    }

    /// Renames column `from` to `to` in the keys and indexes of table `name`, and gives its
    /// checks in `checks` (name, expression) their rewritten expressions.
    pub fn rename_in_dependents(
        &self,
        name: &str,
        from: &str,
        to: &str,
        checks: &[(String, String)],
    ) -> Result<()> {
        self.write(|tx| {
            let id = crate::store::existing_table_id(tx, name)?;
            for table in ["unique_keys", "indexes"] {
                for (constraint, columns) in named_columns(tx, table, id)? {
                    tx.execute(
                        &format!(
                            "UPDATE {table} SET columns = ?3 WHERE table_id = ?1 AND name = ?2"
                        ),
                        params![id.0, constraint, renamed_in(&columns, from, to)],
                    )?;
                }
            }
            for (check, expression) in checks {
                tx.execute(
                    "UPDATE check_constraints SET expression = ?3 \
                     WHERE table_id = ?1 AND name = ?2",
                    params![id.0, check, expression],
                )?;
            }
            Ok(())
        })
    }

    /// Gives table `name` the columns of `schema`, which differs from its current one by the
    /// column change being made, with `default` as the default of the column it names (or
    /// none), and `renamed` (from, to) carried over to its default.
    pub fn change_columns(
        &self,
        name: &str,
        schema: &Schema,
        default: Option<&ColumnDefault>,
        renamed: Option<(&str, &str)>,
    ) -> Result<()> {
        let bytes = encode_schema(schema).map_err(|e| CatalogError::Corrupt {
            table: name.to_string(),
            reason: e.to_string(),
        })?;
        self.write(|tx| {
            let id = crate::store::existing_table_id(tx, name)?;
            let current = table_schema(tx, id, name)?;
            tx.execute(
                "UPDATE tables SET schema = ?1 WHERE table_id = ?2",
                params![bytes, id.0],
            )?;
            // Defaults of columns that are gone go with them.
            for field in current.fields() {
                if schema.column_with_name(field.name()).is_none()
                    && renamed.is_none_or(|(from, _)| from != field.name())
                {
                    tx.execute(
                        "DELETE FROM column_defaults WHERE table_id = ?1 AND column_name = ?2",
                        params![id.0, field.name()],
                    )?;
                }
            }
            if let Some((from, to)) = renamed {
                tx.execute(
                    "UPDATE column_defaults SET column_name = ?3 \
                     WHERE table_id = ?1 AND column_name = ?2",
                    params![id.0, from, to],
                )?;
            }
            if let Some(default) = default {
                tx.execute(
                    "INSERT OR REPLACE INTO column_defaults \
                     (table_id, column_name, expression, sequence) VALUES (?1, ?2, ?3, ?4)",
                    params![id.0, default.column, default.expression, default.sequence],
                )?;
            }
            Ok(())
        })
    }
}
