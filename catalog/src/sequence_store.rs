//! Sequences (`CREATE SEQUENCE`, the sequences behind `serial` columns) and the values they
//! hand out.
//!
//! A sequence's definition is part of the [`CatalogSnapshot`](crate::CatalogSnapshot); its
//! current value is not: values are reserved straight in SQLite, in blocks
//! ([`Catalog::reserve_sequence_values`]), without publishing a new snapshot, so that handing
//! out values never replans anyone's statements. The coordinator is the only place values come
//! from, so they are unique across all shards and workers.
//!
//! A sequence owned by a column (`serial`) is dropped with its table, as in PostgreSQL.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use shardfusion_common::ids::TableId;

use crate::error::CatalogError;
use crate::store::Catalog;

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS user_sequences (
    name TEXT PRIMARY KEY,
    sequence_id INTEGER NOT NULL UNIQUE,
    data_type TEXT NOT NULL CHECK (data_type IN ('smallint', 'integer', 'bigint')),
    start_value INTEGER NOT NULL,
    min_value INTEGER NOT NULL,
    max_value INTEGER NOT NULL,
    increment_by INTEGER NOT NULL CHECK (increment_by <> 0),
    last_value INTEGER NOT NULL,
    is_called INTEGER NOT NULL,
    owner_table INTEGER REFERENCES tables (table_id) ON DELETE CASCADE,
    owner_column TEXT
);
"#;

/// The integer type a sequence's values have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceType {
    SmallInt,
    Integer,
    BigInt,
}

impl SequenceType {
    pub fn name(self) -> &'static str {
        match self {
            Self::SmallInt => "smallint",
            Self::Integer => "integer",
            Self::BigInt => "bigint",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "smallint" => Some(Self::SmallInt),
            "integer" => Some(Self::Integer),
            "bigint" => Some(Self::BigInt),
            _ => None,
        }
    }

    /// The largest value of the type.
    pub fn max(self) -> i64 {
        match self {
            Self::SmallInt => i64::from(i16::MAX),
            Self::Integer => i64::from(i32::MAX),
            Self::BigInt => i64::MAX,
        }
    }

    /// The smallest value of the type.
    pub fn min(self) -> i64 {
        match self {
            Self::SmallInt => i64::from(i16::MIN),
            Self::Integer => i64::from(i32::MIN),
            Self::BigInt => i64::MIN,
        }
    }
}

/// A sequence's definition, as `CREATE SEQUENCE` gives it (`pg_sequences`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceMeta {
    /// Never reused: a sequence dropped and created again under its name is another one.
    pub id: i64,
    pub name: String,
    pub data_type: SequenceType,
    pub start: i64,
    pub min: i64,
    pub max: i64,
    pub increment: i64,
    /// The table column that owns it (`serial`), dropped with it.
    pub owned_by: Option<(TableId, String)>,
}

impl SequenceMeta {
    /// A sequence with PostgreSQL's defaults for `data_type` and the sign of `increment`.
    pub fn new(name: &str, data_type: SequenceType) -> Self {
        Self {
            id: 0,
            name: name.to_string(),
            data_type,
            start: 1,
            min: 1,
            max: data_type.max(),
            increment: 1,
            owned_by: None,
        }
    }

    /// Checks the bounds as PostgreSQL does, naming what is wrong.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.increment == 0 {
            return Err("INCREMENT must not be zero".into());
        }
        let (low, high) = (self.data_type.min(), self.data_type.max());
        if self.min < low || self.max > high {
            return Err(format!(
                "MINVALUE ({}) and MAXVALUE ({}) must be within the range of type {}",
                self.min,
                self.max,
                self.data_type.name()
            ));
        }
        if self.min >= self.max {
            return Err(format!(
                "MINVALUE ({}) must be less than MAXVALUE ({})",
                self.min, self.max
            ));
        }
        if self.start < self.min || self.start > self.max {
            return Err(format!(
                "START value ({}) cannot be outside MINVALUE ({}) and MAXVALUE ({})",
                self.start, self.min, self.max
            ));
        }
        Ok(())
    }
}

/// A run of values reserved from a sequence: `count` values from `first`, `increment` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceBlock {
    /// The sequence's [`SequenceMeta::id`].
    pub sequence_id: i64,
    pub first: i64,
    pub count: u64,
    pub increment: i64,
}

impl SequenceBlock {
    /// The `i`-th value of the block.
    pub fn value(&self, i: u64) -> i64 {
        self.first + self.increment * i as i64
    }
}

impl Catalog {
    /// Creates the sequence `meta`. `Ok(false)` if a sequence of that name exists and
    /// `if_not_exists` is set.
    pub fn create_sequence(&self, meta: &SequenceMeta, if_not_exists: bool) -> Result<bool> {
        meta.validate()
            .map_err(|reason| CatalogError::BadSequence {
                name: meta.name.clone(),
                reason,
            })?;
        // Decided inside the transaction, so a concurrent CREATE SEQUENCE IF NOT EXISTS of
        // the same name is a no-op, not an error.
        self.write(|tx| {
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM user_sequences WHERE name = ?1",
                    params![meta.name],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() && if_not_exists {
                return Ok(false);
            }
            insert_sequence(tx, meta)?;
            Ok(true)
        })
    }

    /// Drops the sequence `name`, refused while a column default uses it. `Ok(false)` if it
    /// does not exist and `if_exists` is set.
    pub fn drop_sequence(&self, name: &str, if_exists: bool) -> Result<bool> {
        self.write(|tx| {
            let found: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM user_sequences WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            if found.is_none() {
                return if if_exists {
                    Ok(false)
                } else {
                    Err(CatalogError::SequenceNotFound {
                        name: name.to_string(),
                    })
                };
            }
            let user: Option<(String, String)> = tx
                .query_row(
                    "SELECT t.name, d.column_name FROM column_defaults d \
                     JOIN tables t ON t.table_id = d.table_id WHERE d.sequence = ?1 LIMIT 1",
                    params![name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((table, column)) = user {
                return Err(CatalogError::SequenceInUse {
                    name: name.to_string(),
                    table,
                    column,
                });
            }
            tx.execute("DELETE FROM user_sequences WHERE name = ?1", params![name])?;
            Ok(true)
        })
    }

    /// Reserves the next `needed` values of `name` (at least one), as that many calls of
    /// `nextval` would hand them out, and up to `wanted` in all while the sequence's bound
    /// allows. Fails, reserving nothing, if the sequence would pass its bound before `needed`.
    /// Publishes no snapshot.
    pub fn reserve_sequence_values(
        &self,
        name: &str,
        needed: u64,
        wanted: u64,
    ) -> Result<SequenceBlock> {
        let needed = needed.max(1);
        self.write_unpublished(|tx| {
            let (meta, last, is_called) = sequence_row(tx, name)?;
            let first = if is_called {
                last.checked_add(meta.increment)
            } else {
                Some(last)
            };
            let Some(first) = first.filter(|f| (meta.min..=meta.max).contains(f)) else {
                return Err(exhausted(&meta));
            };
            let room = if meta.increment > 0 {
                (meta.max as i128 - first as i128) / meta.increment as i128
            } else {
                (first as i128 - meta.min as i128) / -(meta.increment as i128)
            } + 1;
            let count = u64::try_from(room.min(i128::from(wanted.max(needed)))).unwrap_or(needed);
            if count < needed {
                return Err(exhausted(&meta));
            }
            let end = first + meta.increment * (count as i64 - 1);
            tx.execute(
                "UPDATE user_sequences SET last_value = ?2, is_called = 1 WHERE name = ?1",
                params![name, end],
            )?;
            Ok(SequenceBlock {
                sequence_id: meta.id,
                first,
                count,
                increment: meta.increment,
            })
        })
    }

    /// `setval(name, value, is_called)`: the next value handed out is `value` + increment,
    /// or `value` itself if not `is_called`.
    pub fn set_sequence_value(&self, name: &str, value: i64, is_called: bool) -> Result<()> {
        self.write_unpublished(|tx| {
            let (meta, _, _) = sequence_row(tx, name)?;
            if value < meta.min || value > meta.max {
                return Err(CatalogError::SequenceValueOutOfBounds {
                    name: name.to_string(),
                    value,
                    min: meta.min,
                    max: meta.max,
                });
            }
            tx.execute(
                "UPDATE user_sequences SET last_value = ?2, is_called = ?3 WHERE name = ?1",
                params![name, value, is_called],
            )?;
            Ok(())
        })
    }

    /// The last value reserved from `name` and whether one was (`pg_sequences.last_value`).
    pub fn sequence_value(&self, name: &str) -> Result<(i64, bool)> {
        let conn = self.conn.lock();
        let tx = conn.unchecked_transaction()?;
        let (_, last, is_called) = sequence_row(&tx, name)?;
        Ok((last, is_called))
    }

    /// Runs `change` in one write transaction without publishing a snapshot: for changes the
    /// snapshot does not hold.
    fn write_unpublished<T>(
        &self,
        change: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = change(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Refuses to drop table `table` while another table's default uses a sequence it owns
/// (PostgreSQL's 2BP01 without CASCADE).
pub(crate) fn check_owned_sequences_unused(tx: &Transaction<'_>, table: TableId) -> Result<()> {
    let user: Option<(String, String, String)> = tx
        .query_row(
            "SELECT s.name, t.name, d.column_name FROM user_sequences s \
             JOIN column_defaults d ON d.sequence = s.name \
             JOIN tables t ON t.table_id = d.table_id \
             WHERE s.owner_table = ?1 AND d.table_id <> ?1 LIMIT 1",
            params![table.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match user {
        Some((name, table, column)) => Err(CatalogError::SequenceInUse {
            name,
            table,
            column,
        }),
        None => Ok(()),
    }
}

fn exhausted(meta: &SequenceMeta) -> CatalogError {
    CatalogError::SequenceExhausted {
        name: meta.name.clone(),
        bound: if meta.increment > 0 {
            meta.max
        } else {
            meta.min
        },
        maximum: meta.increment > 0,
    }
}

/// Inserts `meta` in `tx`, refusing a name taken by a sequence or a table.
pub(crate) fn insert_sequence(tx: &Transaction<'_>, meta: &SequenceMeta) -> Result<()> {
    let taken: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM user_sequences WHERE name = ?1 \
             UNION ALL SELECT 1 FROM tables WHERE name = ?1",
            params![meta.name],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some() {
        return Err(CatalogError::TableExists {
            name: meta.name.clone(),
        });
    }
    let sequence_id = crate::store::next_id(tx, "sequence_id", 1)?;
    let (owner_table, owner_column) = match &meta.owned_by {
        Some((table, column)) => (Some(table.0), Some(column.as_str())),
        None => (None, None),
    };
    tx.execute(
        "INSERT INTO user_sequences (name, data_type, start_value, min_value, max_value, \
         increment_by, last_value, is_called, owner_table, owner_column, sequence_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?3, 0, ?7, ?8, ?9)",
        params![
            meta.name,
            meta.data_type.name(),
            meta.start,
            meta.min,
            meta.max,
            meta.increment,
            owner_table,
            owner_column,
            sequence_id
        ],
    )?;
    Ok(())
}

fn sequence_row(tx: &Transaction<'_>, name: &str) -> Result<(SequenceMeta, i64, bool)> {
    tx.query_row(
        "SELECT data_type, start_value, min_value, max_value, increment_by, last_value, \
         is_called, owner_table, owner_column, sequence_id FROM user_sequences WHERE name = ?1",
        params![name],
        |r| {
            let meta = meta_of(name, r)?;
            Ok((meta, r.get(5)?, r.get(6)?))
        },
    )
    .optional()?
    .ok_or_else(|| CatalogError::SequenceNotFound {
        name: name.to_string(),
    })
}

fn meta_of(name: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<SequenceMeta> {
    let data_type: String = r.get(0)?;
    let owner: Option<i64> = r.get(7)?;
    let column: Option<String> = r.get(8)?;
    Ok(SequenceMeta {
        id: r.get(9)?,
        name: name.to_string(),
        data_type: SequenceType::parse(&data_type).unwrap_or(SequenceType::BigInt),
        start: r.get(1)?,
        min: r.get(2)?,
        max: r.get(3)?,
        increment: r.get(4)?,
        owned_by: owner.zip(column).map(|(t, c)| (TableId(t), c)),
    })
}

/// Every sequence's definition, for a snapshot.
pub(crate) fn load(conn: &rusqlite::Connection) -> Result<BTreeMap<String, Arc<SequenceMeta>>> {
    let mut stmt = conn.prepare(
        "SELECT data_type, start_value, min_value, max_value, increment_by, last_value, \
         is_called, owner_table, owner_column, sequence_id, name FROM user_sequences",
    )?;
    let rows = stmt.query_map([], |r| {
        let name: String = r.get(10)?;
        meta_of(&name, r)
    })?;
    let mut sequences = BTreeMap::new();
    for meta in rows {
        let meta = meta?;
        sequences.insert(meta.name.clone(), Arc::new(meta));
    }
    Ok(sequences)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::column_default_store::ColumnDefault;

    #[test]
    fn values_come_in_blocks_within_bounds_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("catalog.db");
        {
            let catalog = Catalog::open(&path).expect("catalog");
            let mut meta = SequenceMeta::new("s", SequenceType::SmallInt);
            meta.increment = 10;
            meta.start = 5;
            assert!(catalog.create_sequence(&meta, false).expect("created"));
            assert!(!catalog.create_sequence(&meta, true).expect("exists"));
            assert!(catalog.create_sequence(&meta, false).is_err());
            let block = catalog.reserve_sequence_values("s", 3, 3).expect("block");
            assert_eq!((block.value(0), block.value(2)), (5, 25));
            assert_eq!(catalog.sequence_value("s").expect("state"), (25, true));
            catalog.set_sequence_value("s", 100, false).expect("setval");
            assert_eq!(
                catalog
                    .reserve_sequence_values("s", 1, 1)
                    .expect("one")
                    .first,
                100
            );
            assert!(catalog.snapshot().sequences.contains_key("s"));
        }
        let catalog = Catalog::open(&path).expect("reopened");
        assert_eq!(
            catalog
                .reserve_sequence_values("s", 1, 1)
                .expect("one")
                .first,
            110
        );
        // 32767 is the bound: a block that would pass it reserves nothing.
        catalog
            .set_sequence_value("s", 32_750, true)
            .expect("setval");
        let err = catalog
            .reserve_sequence_values("s", 5, 5)
            .expect_err("past the bound");
        assert!(err.to_string().contains("maximum value"), "{err}");
        // A block wanted beyond the bound stops at it.
        let block = catalog
            .reserve_sequence_values("s", 1, 100)
            .expect("to the bound");
        assert_eq!((block.first, block.count), (32_760, 1));
        assert!(catalog.set_sequence_value("s", 40_000, true).is_err());
    }

    #[test]
    fn an_owned_sequence_goes_with_its_table_and_a_used_one_stays() {
        let catalog = Catalog::open_in_memory().expect("catalog");
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let mut owned = SequenceMeta::new("t_id_seq", SequenceType::BigInt);
        owned.owned_by = Some((TableId(0), "id".to_string()));
        let default = ColumnDefault::new("id", "nextval('t_id_seq')", Some("t_id_seq"));
        catalog
            .create_table_with(
                "t",
                &schema,
                std::slice::from_ref(&default),
                std::slice::from_ref(&owned),
                &Default::default(),
            )
            .expect("table");
        let table = catalog.table("t").expect("t");
        assert_eq!(table.defaults, vec![default]);
        let seq = catalog.snapshot().sequences["t_id_seq"].clone();
        assert_eq!(seq.owned_by, Some((table.table_id, "id".to_string())));
        let err = catalog
            .drop_sequence("t_id_seq", false)
            .expect_err("in use");
        assert!(err.to_string().contains("column \"id\""), "{err}");
        // Another table's default using it holds the owning table back too.
        let other = ColumnDefault::new("id", "nextval('t_id_seq')", Some("t_id_seq"));
        catalog
            .create_table_with(
                "u",
                &schema,
                std::slice::from_ref(&other),
                &[],
                &Default::default(),
            )
            .expect("u");
        let err = catalog.drop_table("t", false).expect_err("used by u");
        assert!(err.to_string().contains("\"u\""), "{err}");
        catalog.drop_table("u", false).expect("u dropped");
        catalog.drop_table("t", false).expect("dropped");
        assert!(catalog.snapshot().sequences.is_empty());
        assert!(!catalog.drop_sequence("t_id_seq", true).expect("if exists"));
    }
}
