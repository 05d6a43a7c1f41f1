//! `pg_dist_cleanup`: deletions of shard files the cluster still owes, as in Citus.
//!
//! A change that makes files garbage (DROP, TRUNCATE, a replacing ingest, a distribution move)
//! records every such file here in the **same** transaction that removes it from the catalog.
//! The coordinator then deletes the files and removes each record only once the node holding
//! the file confirms the deletion; a node that is down keeps its records until it is reachable
//! again (a periodic retry, and whenever it re-registers). Files a failed statement wrote but
//! could not delete are recorded too. So a deletion is never forgotten, not even across a
//! coordinator crash right after the commit.
//!
//! Values follow Citus: `object_type` 1 is a shard placement (here: one Parquet file of a
//! placement, named by its path under the node's data root), `policy_type` is Citus's
//! `CleanupPolicy`.

use rusqlite::{Connection, Transaction, params};
use shardfusion_common::ids::GroupId;

use crate::error::CatalogError;
use crate::model::FileMeta;
use crate::store::{Catalog, next_id};

type Result<T> = std::result::Result<T, CatalogError>;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS pg_dist_cleanup (
    record_id INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id INTEGER NOT NULL,
    object_type INTEGER NOT NULL,
    object_name TEXT NOT NULL,
    node_group_id INTEGER NOT NULL,
    policy_type INTEGER NOT NULL,
    UNIQUE (node_group_id, object_name)
);
"#;

/// Citus's `CLEANUP_OBJECT_SHARD_PLACEMENT`: here, one shard file of a placement.
pub const OBJECT_SHARD_FILE: i32 = 1;

/// When a recorded object is deleted (Citus's `CleanupPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Delete whatever happened: files of a statement that failed.
    Always = 0,
    /// Delete if the operation fails (not used yet: nothing records before it writes).
    OnFailure = 1,
    /// Delete because the operation succeeded: files a committed change made garbage.
    DeferredOnSuccess = 2,
}

impl CleanupPolicy {
    fn from_code(code: i32) -> Self {
        match code {
            0 => Self::Always,
            1 => Self::OnFailure,
            _ => Self::DeferredOnSuccess,
        }
    }
}

/// One owed deletion (`pg_dist_cleanup` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupRecord {
    pub record_id: i64,
    /// All records of one catalog change share an operation id.
    pub operation_id: i64,
    pub object_type: i32,
    /// The file's path relative to the data root of the node holding it.
    pub object_name: String,
    pub group_id: GroupId,
    pub policy: CleanupPolicy,
}

/// Records that `files` must be deleted, inside the transaction that makes them garbage.
pub(crate) fn record_in(
    tx: &Transaction<'_>,
    files: &[(GroupId, FileMeta)],
    policy: CleanupPolicy,
) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let operation = next_id(tx, "operationid", 1)?;
    let mut stmt = tx.prepare(
        "INSERT OR IGNORE INTO pg_dist_cleanup \
         (operation_id, object_type, object_name, node_group_id, policy_type) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (group, file) in files {
        stmt.execute(params![
            operation,
            OBJECT_SHARD_FILE,
            file.path,
            group.0,
            policy as i32
        ])?;
    }
    Ok(())
}

/// Every pending record, oldest first.
pub(crate) fn load(conn: &Connection) -> Result<Vec<CleanupRecord>> {
    let mut stmt = conn.prepare(
        "SELECT record_id, operation_id, object_type, object_name, node_group_id, policy_type \
         FROM pg_dist_cleanup ORDER BY record_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(CleanupRecord {
            record_id: r.get(0)?,
            operation_id: r.get(1)?,
            object_type: r.get(2)?,
            object_name: r.get(3)?,
            group_id: GroupId(r.get(4)?),
            policy: CleanupPolicy::from_code(r.get(5)?),
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

impl Catalog {
    /// Records deletions owed on `group` outside of any other change (files a failed
    /// statement wrote and could not delete).
    pub fn record_cleanup(
        &self,
        group: GroupId,
        paths: &[String],
        policy: CleanupPolicy,
    ) -> Result<()> {
        let files: Vec<(GroupId, FileMeta)> = paths
            .iter()
            .map(|path| {
                let file = FileMeta {
                    path: path.clone(),
                    row_count: 0,
                    byte_size: 0,
                    stats: None,
                };
                (group, file)
            })
            .collect();
        self.write(|tx| record_in(tx, &files, policy))
    }

    /// Removes the records of `paths` on `group`: the node confirmed they are gone.
    /// Returns how many records were removed.
    pub fn complete_cleanup(&self, group: GroupId, paths: &[String]) -> Result<usize> {
        let snapshot = self.snapshot();
        let recorded = snapshot
            .cleanup
            .iter()
            .any(|r| r.group_id == group && paths.contains(&r.object_name));
        if !recorded {
            // Most deletions were never owed (the usual case): no write, no new snapshot.
            return Ok(0);
        }
        self.write(|tx| {
            let mut stmt = tx.prepare(
                "DELETE FROM pg_dist_cleanup WHERE node_group_id = ?1 AND object_name = ?2",
            )?;
            let mut removed = 0;
            for path in paths {
                removed += stmt.execute(params![group.0, path])?;
            }
            Ok(removed)
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::model::TableKind;
    use shardfusion_common::ids::GroupId;

    #[test]
    fn drop_records_its_files_until_the_deletion_is_confirmed() -> Result<()> {
        let catalog = Catalog::open_in_memory()?;
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let table = catalog.create_table("t", &schema)?;
        assert_eq!(table.kind, TableKind::Local);
        let placement = table.shards[0].placements[0].placement_id;
        let file = FileMeta {
            path: "shards/t1/s102008/a.parquet".into(),
            row_count: 1,
            byte_size: 10,
            stats: None,
        };
        catalog.commit_files(
            "t",
            &schema,
            &[(placement, GroupId::COORDINATOR, file.clone())],
        )?;
        assert!(catalog.snapshot().cleanup.is_empty());

        let garbage = catalog.drop_table("t", false)?.unwrap_or_default();
        assert_eq!(garbage, vec![(GroupId::COORDINATOR, file.clone())]);
        let pending = catalog.snapshot().cleanup.clone();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].object_name, file.path);
        assert_eq!(pending[0].policy, CleanupPolicy::DeferredOnSuccess);

        assert_eq!(
            catalog.complete_cleanup(GroupId(5), std::slice::from_ref(&file.path))?,
            0
        );
        assert_eq!(
            catalog.complete_cleanup(GroupId::COORDINATOR, std::slice::from_ref(&file.path))?,
            1
        );
        assert!(catalog.snapshot().cleanup.is_empty());
        Ok(())
    }
}
