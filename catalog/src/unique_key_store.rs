//! Primary keys and unique constraints (`PRIMARY KEY`, `UNIQUE`): recorded with the table
//! that declares them and listed in its [`TableMeta`](crate::model::TableMeta), where the
//! coordinator's writers find them and check every write against them.
//!
//! On a distributed table every key must contain the distribution column, as Citus requires:
//! rows with equal keys then hash into the same shard, so a check never leaves the shard it
//! writes to ([`check_distributable`]).

use std::collections::BTreeMap;

use rusqlite::{Connection, Transaction, params};
use shardfusion_common::ids::TableId;

use crate::error::CatalogError;
use crate::model::TableMeta;

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS unique_keys (
    table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    columns TEXT NOT NULL,
    is_primary INTEGER NOT NULL,
    PRIMARY KEY (table_id, position)
);
"#;

/// One primary key or unique constraint of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    /// The constraint's name (PostgreSQL's `<table>_pkey` or `<table>_<columns>_key` unless
    /// given).
    pub name: String,
    pub columns: Vec<String>,
    /// `PRIMARY KEY` (its columns are `NOT NULL`), not just `UNIQUE`.
    pub primary: bool,
}

/// Records `keys` of the new table `table` (id `id`, columns `columns`), checking that each
/// names columns it has and that at most one is the primary key.
pub(crate) fn insert_unique_keys(
    tx: &Transaction<'_>,
    id: TableId,
    table: &str,
    columns: &[String],
    keys: &[UniqueKey],
) -> Result<()> {
    if keys.iter().filter(|k| k.primary).count() > 1 {
        return Err(CatalogError::InvalidTableDefinition {
            table: table.to_string(),
            reason: "multiple primary keys are not allowed".into(),
        });
    }
    for (position, key) in keys.iter().enumerate() {
        if keys[..position].iter().any(|k| k.name == key.name) {
            return Err(CatalogError::InvalidTableDefinition {
                table: table.to_string(),
                reason: format!("constraint \"{}\" is declared twice", key.name),
            });
        }
        if let Some(twice) = (key.columns.iter().enumerate())
            .find(|(i, c)| key.columns[..*i].contains(c))
            .map(|(_, c)| c)
        {
            return Err(CatalogError::InvalidTableDefinition {
                table: table.to_string(),
                reason: format!(
                    "column \"{twice}\" appears twice in constraint \"{}\"",
                    key.name
                ),
            });
        }
        for column in &key.columns {
            if !columns.contains(column) {
                return Err(CatalogError::ColumnNotFound {
                    table: table.to_string(),
                    column: column.clone(),
                });
            }
        }
        tx.execute(
            "INSERT INTO unique_keys (table_id, position, name, columns, is_primary) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id.0,
                position as i64,
                key.name,
                serde_json::to_string(&key.columns).unwrap_or_default(),
                key.primary
            ],
        )?;
    }
    Ok(())
}

/// Every table's unique keys, by table id, in declaration order.
pub(crate) fn load(conn: &Connection) -> Result<BTreeMap<i64, Vec<UniqueKey>>> {
    let mut stmt = conn.prepare(
        "SELECT table_id, name, columns, is_primary FROM unique_keys \
         ORDER BY table_id, position",
    )?;
    let rows = stmt.query_map([], |r| {
        let columns: String = r.get(2)?;
        Ok((
            r.get::<_, i64>(0)?,
            UniqueKey {
                name: r.get(1)?,
                columns: serde_json::from_str(&columns).unwrap_or_default(),
                primary: r.get(3)?,
            },
        ))
    })?;
    crate::store::by_table(rows)
}

impl crate::store::Catalog {
    /// Adds unique key `key` to table `table` (whose stored rows the caller checked): on a
    /// distributed table it must include the distribution column.
    pub fn add_unique_key(&self, table: &str, key: UniqueKey) -> Result<()> {
        self.write(|tx| {
            let id = crate::store::existing_table_id(tx, table)?;
            let dist_column: Option<String> = tx.query_row(
                "SELECT dist_column FROM tables WHERE table_id = ?1",
                params![id.0],
                |r| r.get(0),
            )?;
            if let Some(column) = dist_column.filter(|c| !key.columns.contains(c)) {
                return Err(CatalogError::BadDistributionColumn {
                    table: table.to_string(),
                    column,
                    reason: format!(
                        "the unique index \"{}\" ({}) does not include it; distributed tables \
                         cannot have UNIQUE constraints that do not include the distribution \
                         column",
                        key.name,
                        key.columns.join(", ")
                    ),
                });
            }
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM unique_keys WHERE table_id = ?1 AND name = ?2)",
                params![id.0, key.name],
                |r| r.get(0),
            )?;
            if taken {
                return Err(CatalogError::TableExists { name: key.name });
            }
            let position: i64 = tx.query_row(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM unique_keys WHERE table_id = ?1",
                params![id.0],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO unique_keys (table_id, position, name, columns, is_primary) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id.0,
                    position,
                    key.name,
                    serde_json::to_string(&key.columns).unwrap_or_default(),
                    key.primary
                ],
            )?;
            Ok(())
        })
    }
}

/// Refuses to distribute `table` by `column` while one of its keys lacks that column.
pub(crate) fn check_distributable(table: &TableMeta, column: &str) -> Result<()> {
    match table
        .unique_keys
        .iter()
        .find(|k| !k.columns.iter().any(|c| c == column))
    {
        Some(key) => Err(CatalogError::BadDistributionColumn {
            table: table.name.clone(),
            column: column.to_string(),
            reason: format!(
                "its constraint \"{}\" ({}) does not include it; distributed tables cannot \
                 have UNIQUE or PRIMARY KEY constraints that do not include the distribution \
                 column",
                key.name,
                key.columns.join(", ")
            ),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::layout::{ColocateWith, DistributionRequest};
    use crate::store::Catalog;
    use crate::test_support::id_schema;

    use super::*;

    /// Keys are kept with the table, and a key without the distribution column refuses the
    /// distribution.
    #[test]
    fn keys_are_recorded_and_must_include_the_distribution_column() -> Result<()> {
        let catalog = Catalog::open_in_memory()?;
        catalog.add_node("h", 1, None)?;
        let keys = crate::TableKeys {
            unique: vec![UniqueKey {
                name: "t_pkey".into(),
                columns: vec!["id".into()],
                primary: true,
            }],
            foreign: Vec::new(),
            checks: Vec::new(),
        };
        catalog.create_table_with("t", &id_schema(), &[], &[], &keys)?;
        assert_eq!(catalog.table("t")?.unique_keys, keys.unique);
        let by = |column: &str| DistributionRequest::Distributed {
            column: column.into(),
            shard_count: Some(2),
            colocate_with: ColocateWith::None,
        };
        let plan = catalog.plan_distribution("t", &by("id"))?;
        catalog.commit_distribution(&plan, &Default::default(), &[])?;
        let other = crate::TableKeys {
            unique: vec![UniqueKey {
                name: "u_id_key".into(),
                columns: vec!["id".into()],
                primary: false,
            }],
            foreign: Vec::new(),
            checks: Vec::new(),
        };
        let schema = arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
            arrow::datatypes::Field::new("tenant", arrow::datatypes::DataType::Int64, false),
        ]);
        catalog.create_table_with("u", &schema, &[], &[], &other)?;
        let refused = catalog.plan_distribution("u", &by("tenant"));
        assert!(
            matches!(&refused, Err(CatalogError::BadDistributionColumn { reason, .. }) if reason.contains("u_id_key")),
            "{refused:?}"
        );
        Ok(())
    }
}
