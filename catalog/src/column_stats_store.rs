//! The `column_stats` table: per committed file and column, what its writer (or `ANALYZE`)
//! recorded — NULL count, min and max bounds, and a distinct-count sketch.
//!
//! Rows are keyed by the file (`placementid`, `path`) and cascade with it, so truncating or
//! dropping a table forgets its statistics in the same transaction. A file's statistics are
//! inserted in the transaction that commits the file ([`insert_stats`], called by
//! `store::insert_files`), and replaced as a whole by `ANALYZE`
//! ([`Catalog::record_column_stats`]). A file with no rows here (written before statistics
//! existed) is simply unknown.
//!
//! Bounds are stored as datafusion-proto `ScalarValue` bytes and the sketch in its own
//! serialized form (`shardfusion_common::column_stats`); a value that no longer decodes is
//! read as unknown, never as an error.
//!
//! Every commit reloads the snapshot; decoding every file's statistics each time would make a
//! commit cost grow with the table (1,000 files × 10 columns took 245 ms in a debug build).
//! [`StatsCache`] keeps each file's decoded statistics between loads: a file's statistics
//! change only through `ANALYZE` or [`Catalog::forget_column_stats`], which drop its entry,
//! and file paths are never reused.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Statement, Transaction, params};
use shardfusion_common::column_stats::encoding::{decode_bound, encode_bound};
use shardfusion_common::column_stats::{ColumnStats, FileStats, HyperLogLog};
use shardfusion_common::ids::PlacementId;

use crate::error::CatalogError;
use crate::store::Catalog;

type Result<T> = std::result::Result<T, CatalogError>;

/// Created on open if missing, so catalogs from before statistics keep opening.
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS column_stats (
    placementid INTEGER NOT NULL,
    path TEXT NOT NULL,
    column_name TEXT NOT NULL,
    null_count INTEGER NOT NULL,
    min_value BLOB,
    min_exact INTEGER NOT NULL DEFAULT 0,
    max_value BLOB,
    max_exact INTEGER NOT NULL DEFAULT 0,
    distinct_sketch BLOB,
    PRIMARY KEY (placementid, path, column_name),
    FOREIGN KEY (placementid, path) REFERENCES shard_files (placementid, path) ON DELETE CASCADE
);
"#;

/// A committed file, as the catalog keys it: (`placementid`, `path`).
type FileKey = (i64, String);

/// The decoded statistics of the files in the last snapshot (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct StatsCache {
    files: Mutex<HashMap<FileKey, Arc<FileStats>>>,
}

impl StatsCache {
    fn forget(&self, key: &FileKey) {
        self.files.lock().remove(key);
    }

    fn clear(&self) {
        self.files.lock().clear();
    }
}

/// Statistics freshly computed for one committed file (by `ANALYZE`).
#[derive(Debug, Clone)]
pub struct AnalyzedFile {
    pub placement: PlacementId,
    pub path: String,
    pub stats: FileStats,
}

impl Catalog {
    /// Replaces the statistics of each file in `files` that is still committed (a file
    /// truncated or dropped meanwhile is skipped). Returns how many files were updated.
    pub fn record_column_stats(&self, files: &[AnalyzedFile]) -> Result<usize> {
        self.write(|tx| {
            let mut updated = 0;
            for file in files {
                let exists: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM shard_files WHERE placementid = ?1 AND path = ?2",
                        params![file.placement.0, file.path],
                        |r| r.get(0),
                    )
                    .optional()?;
                if exists.is_none() {
                    continue;
                }
                tx.execute(
                    "DELETE FROM column_stats WHERE placementid = ?1 AND path = ?2",
                    params![file.placement.0, file.path],
                )?;
                self.stats_cache
                    .forget(&(file.placement.0, file.path.clone()));
                insert_stats(tx, file.placement, &file.path, &file.stats)?;
                updated += 1;
            }
            Ok(updated)
        })
    }

    /// Forgets the column statistics of every file of `table`: they read as unknown (as for
    /// files written before statistics existed) until `ANALYZE` recomputes them.
    pub fn forget_column_stats(&self, table: &str) -> Result<()> {
        self.write(|tx| {
            let removed = tx.execute(
                "DELETE FROM column_stats WHERE placementid IN (SELECT placementid \
                 FROM placements JOIN shards USING (shardid) JOIN tables USING (table_id) \
                 WHERE tables.name = ?1)",
                params![table],
            )?;
            self.stats_cache.clear();
            tracing::debug!("forgot {removed} column statistics of {table}");
            Ok(())
        })
    }
}

/// Records `stats` for the committed file `path` of `placement`.
pub(crate) fn insert_stats(
    tx: &Transaction<'_>,
    placement: PlacementId,
    path: &str,
    stats: &FileStats,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO column_stats (placementid, path, column_name, null_count, min_value, \
         min_exact, max_value, max_exact, distinct_sketch) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (name, column) in &stats.columns {
        let (min, min_exact) = encode_bound(column.min.as_ref());
        let (max, max_exact) = encode_bound(column.max.as_ref());
        stmt.execute(params![
            placement.0,
            path,
            name,
            column.null_count as i64,
            (!min.is_empty()).then_some(min),
            min_exact,
            (!max.is_empty()).then_some(max),
            max_exact,
            column.distinct.as_ref().map(HyperLogLog::to_bytes),
        ])?;
    }
    Ok(())
}

/// Every file's statistics, by (`placementid`, `path`): from `cache` where it has them,
/// decoded from the table otherwise. Leaves `cache` holding exactly the returned files.
pub(crate) fn load_column_stats(
    conn: &Connection,
    cache: &StatsCache,
) -> Result<HashMap<FileKey, Arc<FileStats>>> {
    let mut keys = conn.prepare("SELECT DISTINCT placementid, path FROM column_stats")?;
    let keys = keys
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<std::result::Result<Vec<FileKey>, _>>()?;
    let mut read = conn.prepare_cached(
        "SELECT column_name, null_count, min_value, min_exact, max_value, max_exact, \
         distinct_sketch FROM column_stats WHERE placementid = ?1 AND path = ?2",
    )?;
    let mut cached = cache.files.lock();
    let mut out = HashMap::with_capacity(keys.len());
    for key in keys {
        let stats = match cached.get(&key) {
            Some(stats) => Arc::clone(stats),
            None => Arc::new(read_file_stats(&mut read, &key)?),
        };
        out.insert(key, stats);
    }
    cached.clone_from(&out);
    Ok(out)
}

/// The statistics of one file, decoded from its rows.
fn read_file_stats(stmt: &mut Statement<'_>, key: &FileKey) -> Result<FileStats> {
    let mut rows = stmt.query(params![key.0, key.1])?;
    let mut stats = FileStats::default();
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let min: Option<Vec<u8>> = row.get(2)?;
        let max: Option<Vec<u8>> = row.get(4)?;
        let sketch: Option<Vec<u8>> = row.get(6)?;
        let column = ColumnStats {
            null_count: row.get::<_, i64>(1)? as u64,
            min: min.and_then(|b| decode_bound(&b, row.get(3).unwrap_or(false))),
            max: max.and_then(|b| decode_bound(&b, row.get(5).unwrap_or(false))),
            distinct: sketch.and_then(|b| HyperLogLog::from_bytes(&b)),
        };
        stats.columns.insert(name, column);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::ScalarValue;
    use shardfusion_common::column_stats::Bound;

    use super::*;
    use crate::model::FileMeta;
    use shardfusion_common::ids::GroupId;

    fn stats(min: i64, max: i64) -> FileStats {
        let mut sketch = HyperLogLog::new();
        sketch.add_bytes(b"v");
        let mut stats = FileStats::default();
        stats.columns.insert(
            "id".into(),
            ColumnStats {
                null_count: 1,
                min: Bound::lower(ScalarValue::Int64(Some(min))),
                max: Bound::upper(ScalarValue::Int64(Some(max))),
                distinct: Some(sketch),
            },
        );
        stats
    }

    fn file(path: &str, stats: Option<FileStats>) -> FileMeta {
        FileMeta {
            path: path.into(),
            row_count: 3,
            byte_size: 10,
            stats: stats.map(Arc::new),
        }
    }

    #[test]
    fn committed_with_the_file_replaced_by_analyze_and_gone_with_the_rows() -> Result<()> {
        let catalog = Catalog::open_in_memory()?;
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
        let table = catalog.create_table("t", &schema)?;
        let placement = table.shards[0].placements[0].placement_id;
        catalog.commit_files(
            "t",
            &schema,
            &[
                (
                    placement,
                    GroupId::COORDINATOR,
                    file("a.parquet", Some(stats(1, 5))),
                ),
                (placement, GroupId::COORDINATOR, file("b.parquet", None)),
            ],
        )?;
        let before = catalog.table("t")?;
        let files = &before.shards[0].placements[0].files;
        assert_eq!(files[0].stats.as_deref(), Some(&stats(1, 5)));
        assert_eq!(files[1].stats, None);
        // Another commit reuses the decoded statistics of files it did not touch.
        catalog.commit_files(
            "t",
            &schema,
            &[(placement, GroupId::COORDINATOR, file("c.parquet", None))],
        )?;
        let after = catalog.table("t")?;
        let (Some(old), Some(new)) = (
            &files[0].stats,
            &after.shards[0].placements[0].files[0].stats,
        ) else {
            panic!("statistics lost by a commit");
        };
        assert!(Arc::ptr_eq(old, new));

        let analyzed = |path: &str, s| AnalyzedFile {
            placement,
            path: path.into(),
            stats: s,
        };
        let updated = catalog.record_column_stats(&[
            analyzed("b.parquet", stats(7, 9)),
            analyzed("gone.parquet", stats(0, 0)),
        ])?;
        assert_eq!(updated, 1);
        let files = &catalog.table("t")?.shards[0].placements[0].files;
        assert_eq!(files[1].stats.as_deref(), Some(&stats(7, 9)));

        catalog.forget_column_stats("t")?;
        let files = &catalog.table("t")?.shards[0].placements[0].files;
        assert!(files.iter().all(|f| f.stats.is_none()));

        catalog.record_column_stats(&[analyzed("a.parquet", stats(1, 5))])?;
        catalog.truncate_table("t")?;
        let conn = catalog.conn.lock();
        let left: i64 = conn.query_row("SELECT count(*) FROM column_stats", [], |r| r.get(0))?;
        assert_eq!(left, 0);
        Ok(())
    }

    #[test]
    fn catalogs_from_before_statistics_still_open() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|_| CatalogError::NoWorkers)?;
        let path = dir.path().join("catalog.db");
        {
            let catalog = Catalog::open(&path)?;
            let schema = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
            let table = catalog.create_table("t", &schema)?;
            let placement = table.shards[0].placements[0].placement_id;
            catalog.commit_files(
                "t",
                &schema,
                &[(placement, GroupId::COORDINATOR, file("a.parquet", None))],
            )?;
            catalog
                .conn
                .lock()
                .execute_batch("DROP TABLE column_stats")?;
        }
        let catalog = Catalog::open(&path)?;
        let files = &catalog.table("t")?.shards[0].placements[0].files;
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].stats, None);
        Ok(())
    }
}
