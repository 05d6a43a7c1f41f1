//! Which storage a catalog's shard files live in, bound at the first start.
//!
//! The catalog lists shard files by path only; the paths mean something only in the store
//! they were written to (each node's data directory, or one shared S3 prefix). A coordinator
//! restarted with another `--storage` would find none of them, and its orphan collection
//! could delete a whole other cluster's files, so the storage is recorded with the catalog
//! when it is created and checked at every start.

use rusqlite::{OptionalExtension, params};

use crate::error::CatalogError;
use crate::store::Catalog;

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS cluster_storage \
     (id INTEGER PRIMARY KEY CHECK (id = 1), storage TEXT NOT NULL);";

/// How a data root on each node's own disk is named.
const LOCAL: &str = "local";

fn has_files(tx: &rusqlite::Transaction<'_>) -> Result<bool> {
    Ok(tx
        .query_row("SELECT 1 FROM shard_files LIMIT 1", [], |_| Ok(()))
        .optional()?
        .is_some())
}

impl Catalog {
    /// Records `storage` (`local`, or a storage URL) as where this catalog's shard files
    /// live, or checks that it is what was recorded before.
    pub fn bind_storage(&self, storage: &str) -> Result<()> {
        self.write(|tx| {
            let recorded: Option<String> = tx
                .query_row(
                    "SELECT storage FROM cluster_storage WHERE id = 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            match recorded {
                Some(recorded) if recorded == storage => Ok(()),
                Some(recorded) => Err(CatalogError::StorageMismatch {
                    recorded,
                    given: storage.to_string(),
                }),
                // A catalog from before storage was recorded kept its files on local disks.
                None if has_files(tx)? && storage != LOCAL => Err(CatalogError::StorageMismatch {
                    recorded: LOCAL.to_string(),
                    given: storage.to_string(),
                }),
                None => {
                    tx.execute(
                        "INSERT INTO cluster_storage (id, storage) VALUES (1, ?1)",
                        params![storage],
                    )?;
                    Ok(())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_storage_sticks() -> Result<()> {
        let catalog = Catalog::open_in_memory()?;
        catalog.bind_storage("s3://data/c1")?;
        catalog.bind_storage("s3://data/c1")?;
        let other = catalog.bind_storage(LOCAL);
        assert!(
            matches!(other, Err(CatalogError::StorageMismatch { .. })),
            "{other:?}"
        );
        Ok(())
    }

    #[test]
    fn a_catalog_with_files_from_before_is_on_local_disks() -> Result<()> {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let catalog = Catalog::open_in_memory()?;
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let table = catalog.create_table("t", &schema)?;
        let placement = &table.shards[0].placements[0];
        let file = crate::model::FileMeta {
            path: "shards/t1/s1/a.parquet".into(),
            row_count: 1,
            byte_size: 10,
            stats: None,
        };
        catalog.commit_files(
            "t",
            &schema,
            &[(placement.placement_id, placement.group_id, file)],
        )?;
        let s3 = catalog.bind_storage("s3://data/c1");
        assert!(
            matches!(s3, Err(CatalogError::StorageMismatch { .. })),
            "{s3:?}"
        );
        catalog.bind_storage(LOCAL)
    }
}
