//! Column defaults (`DEFAULT expr` in `CREATE TABLE`, and the `nextval` default of a `serial`
//! column), kept as the SQL text of the expression, and the table creation that records them
//! together with the sequences the table owns.
//!
//! The catalog does not evaluate them: the coordinator plans the text when a statement
//! leaves a column out (`INSERT`, `COPY`, ingest). A default that calls `nextval` names its
//! sequence, so that the sequence cannot be dropped from under it.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use rusqlite::{OptionalExtension, Transaction, params};
use shardfusion_common::codec::encode_schema;
use shardfusion_common::ids::TableId;

use crate::error::CatalogError;
use crate::foreign_key_store::{ForeignKey, insert_foreign_keys};
use crate::model::TableMeta;
use crate::sequence_store::{SequenceMeta, insert_sequence};
use crate::store::{Catalog, insert_local_shard, next_id, table_id_of};
use crate::unique_key_store::{UniqueKey, insert_unique_keys};

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS column_defaults (
    table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
    column_name TEXT NOT NULL,
    expression TEXT NOT NULL,
    sequence TEXT,
    PRIMARY KEY (table_id, column_name)
);
"#;

/// The default of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDefault {
    pub column: String,
    /// The expression, as SQL (`now()`, `nextval('t_id_seq')`, `'new'`).
    pub expression: String,
    /// The sequence it takes values from, if any.
    pub sequence: Option<String>,
}

impl ColumnDefault {
    pub fn new(column: &str, expression: &str, sequence: Option<&str>) -> Self {
        Self {
            column: column.to_string(),
            expression: expression.to_string(),
            sequence: sequence.map(str::to_string),
        }
    }
}

/// The keys a new table declares.
#[derive(Debug, Clone, Default)]
pub struct TableKeys {
    /// Its primary key and unique constraints.
    pub unique: Vec<UniqueKey>,
    /// Its foreign keys.
    pub foreign: Vec<ForeignKey>,
    /// Its `CHECK` constraints.
    pub checks: Vec<crate::check_constraint_store::CheckConstraint>,
}

impl Catalog {
    /// Creates a local table on the coordinator, with `defaults` for its columns, the
    /// `sequences` it owns (each one's `owned_by` names its column; the table id is filled
    /// in) and its `keys`, all in one transaction.
    pub fn create_table_with(
        &self,
        name: &str,
        schema: &Schema,
        defaults: &[ColumnDefault],
        sequences: &[SequenceMeta],
        keys: &TableKeys,
    ) -> Result<Arc<TableMeta>> {
        let schema_bytes = encode_schema(schema).map_err(|e| CatalogError::Corrupt {
            table: name.to_string(),
            reason: e.to_string(),
        })?;
        for default in defaults {
            if schema.column_with_name(&default.column).is_none() {
                return Err(CatalogError::ColumnNotFound {
                    table: name.to_string(),
                    column: default.column.clone(),
                });
            }
        }
        self.write(|tx| {
            let sequence_named: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM user_sequences WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            if table_id_of(tx, name)?.is_some()
                || sequence_named.is_some()
                || crate::view_store::view_exists(tx, name)?
            {
                return Err(CatalogError::TableExists {
                    name: name.to_string(),
                });
            }
            let table_id = next_id(tx, "table_id", 1)?;
            tx.execute(
                "INSERT INTO tables (table_id, name, schema, kind) VALUES (?1, ?2, ?3, 'local')",
                params![table_id, name, schema_bytes],
            )?;
            insert_local_shard(tx, table_id)?;
            for sequence in sequences {
                let mut owned = sequence.clone();
                owned.owned_by = sequence
                    .owned_by
                    .as_ref()
                    .map(|(_, column)| (TableId(table_id), column.clone()));
                insert_sequence(tx, &owned)?;
            }
            for default in defaults {
                insert_default(tx, TableId(table_id), default)?;
            }
            let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            insert_foreign_keys(tx, TableId(table_id), name, &columns, &keys.foreign)?;
            insert_unique_keys(tx, TableId(table_id), name, &columns, &keys.unique)?;
            crate::check_constraint_store::insert_checks(
                tx,
                TableId(table_id),
                name,
                &keys.checks,
            )?;
            Ok(())
        })?;
        self.table(name)
    }
}

fn insert_default(tx: &Transaction<'_>, table: TableId, default: &ColumnDefault) -> Result<()> {
    if let Some(sequence) = &default.sequence {
        let exists: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM user_sequences WHERE name = ?1",
                params![sequence],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Err(CatalogError::SequenceNotFound {
                name: sequence.clone(),
            });
        }
    }
    tx.execute(
        "INSERT INTO column_defaults (table_id, column_name, expression, sequence) \
         VALUES (?1, ?2, ?3, ?4)",
        params![
            table.0,
            default.column,
            default.expression,
            default.sequence
        ],
    )?;
    Ok(())
}

/// Every table's column defaults, by table id, in column order of their rows.
pub(crate) fn load(conn: &rusqlite::Connection) -> Result<BTreeMap<i64, Vec<ColumnDefault>>> {
    let mut stmt = conn.prepare(
        "SELECT table_id, column_name, expression, sequence FROM column_defaults \
         ORDER BY table_id, column_name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            ColumnDefault {
                column: r.get(1)?,
                expression: r.get(2)?,
                sequence: r.get(3)?,
            },
        ))
    })?;
    crate::store::by_table(rows)
}
