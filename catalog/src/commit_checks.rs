//! Checks a commit makes, inside its write transaction, on what its statement read earlier.
//!
//! A statement plans against one snapshot, writes files for a while, and commits at the end;
//! meanwhile other statements may drop, truncate, distribute or alter the table. Every commit
//! that depends on what it read re-reads it here, under the write lock, and fails with a
//! retryable [`CatalogError::Conflict`] when it no longer holds — never on the snapshot.

use datafusion::arrow::datatypes::Schema;
use rusqlite::{OptionalExtension, Transaction, params};
use shardfusion_common::codec::decode_schema;
use std::collections::{BTreeMap, BTreeSet};

use shardfusion_common::ids::{GroupId, PlacementId, TableId};

use crate::error::{CatalogError, ConcurrentChange};
use crate::write_fence::WriteFences;

type Result<T> = std::result::Result<T, CatalogError>;

/// Checks that files written into `placements` (each on the node group it was written to)
/// with `written` columns may still be committed to `table`: the placements still belong to
/// one table, which is not fenced for a distribution, whose columns still take the rows as
/// written; each placement is still on the group its files were written to and is not being
/// switched by a shard move; and every shard written to gets files on every placement it has
/// now (a copy added since the statement planned needs them too). Returns that table (`None`
/// when there are no placements).
pub(crate) fn check_writable(
    tx: &Transaction<'_>,
    fences: &WriteFences,
    table: &str,
    written: &Schema,
    placements: impl IntoIterator<Item = (PlacementId, GroupId)>,
) -> Result<Option<TableId>> {
    let conflict = |change| CatalogError::Conflict {
        table: table.to_string(),
        change,
    };
    let mut owner = None;
    let mut shards: BTreeMap<i64, BTreeSet<PlacementId>> = BTreeMap::new();
    for (placement, group) in placements {
        let (id, shard, now) = tx
            .query_row(
                "SELECT s.table_id, s.shardid, p.groupid FROM placements p \
                 JOIN shards s USING (shardid) WHERE p.placementid = ?1",
                params![placement.0],
                |r| Ok((TableId(r.get(0)?), r.get::<_, i64>(1)?, GroupId(r.get(2)?))),
            )
            .optional()?
            .ok_or(conflict(ConcurrentChange::ShardsReplaced))?;
        if owner.is_some_and(|o| o != id) {
            return Err(conflict(ConcurrentChange::ShardsReplaced));
        }
        owner = Some(id);
        if fences.is_placement_fenced(placement) {
            return Err(conflict(ConcurrentChange::BeingMoved));
        }
        if now != group {
            return Err(conflict(ConcurrentChange::PlacementMoved));
        }
        shards.entry(shard).or_default().insert(placement);
    }
    let Some(id) = owner else {
        return Ok(None);
    };
    if fences.is_fenced(id) {
        return Err(conflict(ConcurrentChange::BeingDistributed));
    }
    let mut stmt = tx.prepare("SELECT placementid FROM placements WHERE shardid = ?1")?;
    for (shard, covered) in &shards {
        let all: Vec<PlacementId> = stmt
            .query_map(params![shard], |r| r.get(0).map(PlacementId))?
            .collect::<std::result::Result<_, _>>()?;
        if all.iter().any(|p| !covered.contains(p)) {
            return Err(conflict(ConcurrentChange::PlacementAdded));
        }
    }
    let current = table_schema(tx, id, table)?;
    let defaulted: Vec<String> = tx
        .prepare("SELECT column_name FROM column_defaults WHERE table_id = ?1")?
        .query_map(params![id.0], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    if !takes_rows_written_with(&current, written, &defaulted) {
        return Err(conflict(ConcurrentChange::ColumnsChanged));
    }
    Ok(Some(id))
}

/// The columns `table` (id `id`) has now.
pub(crate) fn table_schema(tx: &Transaction<'_>, id: TableId, table: &str) -> Result<Schema> {
    let bytes: Vec<u8> = tx
        .query_row(
            "SELECT schema FROM tables WHERE table_id = ?1",
            params![id.0],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| CatalogError::Conflict {
            table: table.to_string(),
            change: ConcurrentChange::Dropped,
        })?;
    decode_schema(&bytes).map_err(|e| CatalogError::Corrupt {
        table: table.to_string(),
        reason: e.to_string(),
    })
}

/// Whether a table with `current` columns can hold rows written with `written` columns: each
/// written column is still there with its type, and each column added since is nullable
/// without a default (one of `defaulted`): its value in those rows is NULL, as for every row
/// that existed when it was added. (A column added with a default gave every stored row the
/// default; rows written without it would lack it.)
pub(crate) fn takes_rows_written_with(
    current: &Schema,
    written: &Schema,
    defaulted: &[String],
) -> bool {
    let kept = written.fields().iter().all(|w| {
        current
            .field_with_name(w.name())
            .is_ok_and(|c| c.data_type() == w.data_type())
    });
    let added_are_nullable = current
        .fields()
        .iter()
        .filter(|c| written.field_with_name(c.name()).is_err())
        .all(|c| c.is_nullable() && !defaulted.contains(c.name()));
    kept && added_are_nullable
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};

    fn schema(fields: &[(&str, bool)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(name, nullable)| Field::new(*name, DataType::Int64, *nullable))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn rows_fit_a_table_that_gained_nullable_columns_only() {
        let written = schema(&[("k", false)]);
        assert!(takes_rows_written_with(&written, &written, &[]));
        assert!(takes_rows_written_with(
            &schema(&[("k", false), ("extra", true)]),
            &written,
            &[]
        ));
        // A column added with a default gave the stored rows a value; new rows lack it.
        assert!(!takes_rows_written_with(
            &schema(&[("k", false), ("extra", true)]),
            &written,
            &["extra".to_string()]
        ));
        assert!(!takes_rows_written_with(
            &schema(&[("k", false), ("required", false)]),
            &written,
            &[]
        ));
        assert!(!takes_rows_written_with(
            &schema(&[("other", true)]),
            &written,
            &[]
        ));
        let retyped = Schema::new(vec![Field::new("k", DataType::Utf8, false)]);
        assert!(!takes_rows_written_with(&retyped, &written, &[]));
    }
}
