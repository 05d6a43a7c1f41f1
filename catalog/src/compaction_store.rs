//! Compaction's commit (many small files of a shard replaced by one), also `UPDATE`'s and
//! `DELETE`'s (each changed file replaced by its rewritten version), in one transaction.
//!
//! The coordinator reads a shard's small files, writes their rows as one sorted file per
//! placement, and commits the swap here. Files committed since it read them are left alone
//! (it replaces only the files it names); if any file it names is gone (a TRUNCATE, a
//! replacing load, or another compaction got there first), the swap is refused with a
//! conflict and nothing changes, so the rows are never counted twice or lost.
//!
//! The replaced files are returned, not recorded for deletion: queries planned on an older
//! snapshot may still read them, so the coordinator records and deletes them once those
//! have finished (until then they are orphans that reconciliation's grace period protects).

use shardfusion_common::ids::{GroupId, PlacementId};

use crate::error::CatalogError;
use crate::file_changes::{FileChange, swap_files_in};
use crate::model::FileMeta;
use crate::store::Catalog;

type Result<T> = std::result::Result<T, CatalogError>;

impl Catalog {
    /// Replaces the files `replaced` (placement, its node group, path) of `table` with
    /// `written` (their rows, compacted, updated or with some deleted), in one transaction.
    /// Returns the replaced files with their node groups; refused with
    /// [`crate::ConcurrentChange::RowsRemoved`] if any is no longer committed, and as any commit is
    /// if a placement it changes moved, is being moved, or its shard gained a copy.
    pub fn compact_files(
        &self,
        table: &str,
        schema: &arrow::datatypes::Schema,
        replaced: &[(PlacementId, GroupId, String)],
        written: &[(PlacementId, GroupId, FileMeta)],
    ) -> Result<Vec<(GroupId, FileMeta)>> {
        let change = FileChange {
            table: table.to_string(),
            written: schema.clone(),
            removed: replaced.to_vec(),
            added: written.to_vec(),
        };
        self.write(|tx| swap_files_in(tx, &self.fences, &change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConcurrentChange;
    use crate::test_support::{add_file, distributed, id_schema};

    /// A DELETE that emptied a file writes no new one, but still changes its placement: a
    /// placement being moved refuses it as it refuses any commit.
    #[test]
    fn a_placement_left_without_files_is_checked_like_any_changed_one() -> Result<()> {
        let catalog = distributed(&["t"])?;
        add_file(&catalog, "t", 0, "f")?;
        let placement = catalog.table("t")?.shards[0].placements[0].clone();
        let replaced = [(placement.placement_id, placement.group_id, "f".to_string())];
        let fence = catalog.fence_placements(&[placement.placement_id]);
        assert!(matches!(
            catalog.compact_files("t", &id_schema(), &replaced, &[]),
            Err(CatalogError::Conflict {
                change: ConcurrentChange::BeingMoved,
                ..
            })
        ));
        drop(fence);
        let old = catalog.compact_files("t", &id_schema(), &replaced, &[])?;
        assert_eq!(old.len(), 1);
        assert!(catalog.table("t")?.shards[0].placements[0].files.is_empty());
        Ok(())
    }
}
