//! Switching placements to the node groups their files were copied to: a shard move
//! (`citus_move_shard_placement`, the rebalancer, `citus_drain_node`) and a new copy of a
//! reference table on a node that joined.
//!
//! The coordinator copies a placement's committed files to the new node first, then commits
//! the switch here, in one transaction for every placement of the shard group. The switch
//! re-checks what the copy relied on: the placement is still on its old node, and its files
//! are exactly the ones copied (a write that committed meanwhile refuses the switch, and the
//! coordinator copies the new files and tries again). Placements keep their ids across a
//! move, so the files' column statistics stay with them.
//!
//! Inside the same transaction the old files are recorded in `pg_dist_cleanup` (deferred on
//! success), and the records that protected the copies while they were uncommitted
//! ([`CleanupPolicy::OnFailure`], written before the copy started) are struck. On shared
//! object storage nothing was copied: the placement takes its files along
//! ([`MovedFiles::Shared`]) and nothing becomes garbage.

use std::collections::BTreeSet;

use rusqlite::{OptionalExtension, Transaction, params};
use shardfusion_common::ids::{GroupId, PlacementId, ShardId};

use crate::cleanup::{CleanupPolicy, record_in};
use crate::error::{CatalogError, ConcurrentChange};
use crate::model::FileMeta;
use crate::store::{Catalog, next_id};

type Result<T> = std::result::Result<T, CatalogError>;

/// One placement's files, copied from the node group `from` to the group `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementCopy {
    /// The placement copied (of a table named `table`, for messages).
    pub placement_id: PlacementId,
    pub table: String,
    pub from: GroupId,
    pub to: GroupId,
    /// The paths copied: every file the placement had when the copy was made.
    pub paths: Vec<String>,
}

/// What becomes of a moved placement's files on its old node group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovedFiles {
    /// They were copied to the new group; the old ones are garbage.
    Copied,
    /// The groups share one object store: the same files serve the new group.
    Shared,
}

impl Catalog {
    /// Moves each placement of `copies` to its `to` group in one transaction; returns the
    /// files left on the old groups, now garbage (recorded in `pg_dist_cleanup`; none when
    /// `files` is [`MovedFiles::Shared`]).
    ///
    /// Refused with a [`CatalogError::Conflict`] (nothing changes) if a placement is gone
    /// ([`ConcurrentChange::Dropped`]), no longer on its `from` group
    /// ([`ConcurrentChange::PlacementMoved`]), or has files other than those copied
    /// ([`ConcurrentChange::FilesChanged`]); or if its shard already has a placement on `to`.
    pub fn move_placements(
        &self,
        copies: &[PlacementCopy],
        files_moved: MovedFiles,
    ) -> Result<Vec<(GroupId, FileMeta)>> {
        self.write(|tx| {
            check_whole_groups(tx, copies)?;
            let mut garbage = Vec::new();
            for copy in copies {
                let (shard, files) = check_copied(tx, copy)?;
                if has_placement_on(tx, shard, copy.to)? {
                    return Err(CatalogError::PlacementExists {
                        shard,
                        group: copy.to,
                    });
                }
                tx.execute(
                    "UPDATE placements SET groupid = ?1 WHERE placementid = ?2",
                    params![copy.to.0, copy.placement_id.0],
                )?;
                strike_copy_records(tx, copy)?;
                if files_moved == MovedFiles::Copied {
                    garbage.extend(files.into_iter().map(|f| (copy.from, f)));
                }
            }
            record_in(tx, &garbage, CleanupPolicy::DeferredOnSuccess)?;
            Ok(garbage)
        })
    }

    /// Adds, for each of `copies`, a placement of the same shard on its `to` group holding the
    /// copied files (with their column statistics), in one transaction. The same checks as
    /// [`Catalog::move_placements`]; a group that already holds the shard is left as it is.
    pub fn add_placement_copies(&self, copies: &[PlacementCopy]) -> Result<()> {
        self.write(|tx| {
            for copy in copies {
                let (shard, _) = check_copied(tx, copy)?;
                if has_placement_on(tx, shard, copy.to)? {
                    continue;
                }
                let placement = next_id(tx, "placementid", 1)?;
                tx.execute(
                    "INSERT INTO placements (placementid, shardid, groupid) VALUES (?1, ?2, ?3)",
                    params![placement, shard.0, copy.to.0],
                )?;
                tx.execute(
                    "INSERT INTO shard_files (placementid, path, row_count, byte_size) \
                     SELECT ?1, path, row_count, byte_size FROM shard_files WHERE placementid = ?2",
                    params![placement, copy.placement_id.0],
                )?;
                tx.execute(
                    "INSERT INTO column_stats (placementid, path, column_name, null_count, \
                     min_value, min_exact, max_value, max_exact, distinct_sketch) \
                     SELECT ?1, path, column_name, null_count, min_value, min_exact, max_value, \
                     max_exact, distinct_sketch FROM column_stats WHERE placementid = ?2",
                    params![placement, copy.placement_id.0],
                )?;
                strike_copy_records(tx, copy)?;
            }
            Ok(())
        })
    }
}

/// Checks that `copy`'s placement is still on its `from` group with exactly the copied
/// files; returns its shard and files.
fn check_copied(tx: &Transaction<'_>, copy: &PlacementCopy) -> Result<(ShardId, Vec<FileMeta>)> {
    let conflict = |change| CatalogError::Conflict {
        table: copy.table.clone(),
        change,
    };
    let found: Option<(i64, i32)> = tx
        .query_row(
            "SELECT shardid, groupid FROM placements WHERE placementid = ?1",
            params![copy.placement_id.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((shard, group)) = found else {
        return Err(conflict(ConcurrentChange::Dropped));
    };
    if GroupId(group) != copy.from {
        return Err(conflict(ConcurrentChange::PlacementMoved));
    }
    let mut stmt =
        tx.prepare("SELECT path, row_count, byte_size FROM shard_files WHERE placementid = ?1")?;
    let files: Vec<FileMeta> = stmt
        .query_map(params![copy.placement_id.0], |r| {
            Ok(FileMeta {
                path: r.get(0)?,
                row_count: r.get::<_, i64>(1)? as u64,
                byte_size: r.get::<_, i64>(2)? as u64,
                stats: None,
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    let now: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let copied: BTreeSet<&str> = copy.paths.iter().map(String::as_str).collect();
    if now != copied {
        return Err(conflict(ConcurrentChange::FilesChanged));
    }
    Ok((ShardId(shard), files))
}

/// Whether `shard` has a placement on node group `group`.
fn has_placement_on(tx: &Transaction<'_>, shard: ShardId, group: GroupId) -> Result<bool> {
    let count: i64 = tx.query_row(
        "SELECT count(*) FROM placements WHERE shardid = ?1 AND groupid = ?2",
        params![shard.0, group.0],
        |r| r.get(0),
    )?;
    Ok(count > 0)
}

/// Strikes every record owing the deletion of `copy`'s files on its new group: the ones
/// that kept the copies deletable while uncommitted, and any older one (the placement was
/// on that group before and moved away, its files still retiring there): they are the
/// placement's files now.
fn strike_copy_records(tx: &Transaction<'_>, copy: &PlacementCopy) -> Result<()> {
    let mut stmt =
        tx.prepare("DELETE FROM pg_dist_cleanup WHERE node_group_id = ?1 AND object_name = ?2")?;
    for path in &copy.paths {
        stmt.execute(params![copy.to.0, path])?;
    }
    Ok(())
}

/// Checks that the switched placements are every placement on `from` of the shard groups
/// they belong to: a table that joined the colocation group meanwhile has its shard there
/// too, and a shard group never ends up split across nodes.
fn check_whole_groups(tx: &Transaction<'_>, copies: &[PlacementCopy]) -> Result<()> {
    let switched: BTreeSet<i64> = copies.iter().map(|c| c.placement_id.0).collect();
    let mut stmt = tx.prepare(
        "SELECT p.placementid FROM placements p JOIN shards s USING (shardid) \
         JOIN tables t USING (table_id) \
         WHERE p.groupid = ?1 AND t.kind = 'distributed' AND (t.colocationid, s.shard_index) IN \
         (SELECT t2.colocationid, s2.shard_index FROM placements p2 JOIN shards s2 USING (shardid) \
          JOIN tables t2 USING (table_id) WHERE p2.placementid = ?2)",
    )?;
    for copy in copies {
        let on_from: Vec<i64> = stmt
            .query_map(params![copy.from.0, copy.placement_id.0], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        if on_from.iter().any(|p| !switched.contains(p)) {
            return Err(CatalogError::Conflict {
                table: copy.table.clone(),
                change: ConcurrentChange::FilesChanged,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::layout::{ColocateWith, DistributionRequest};

    use crate::test_support::file;

    /// A table `t` distributed in 2 shards over 2 nodes, one file in shard 0.
    fn catalog() -> Result<(Catalog, PlacementId, GroupId)> {
        let catalog = Catalog::open_in_memory()?;
        catalog.add_node("h", 1, None)?;
        catalog.add_node("h", 2, None)?;
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        catalog.create_table("t", &schema)?;
        let request = DistributionRequest::Distributed {
            column: "id".into(),
            shard_count: Some(2),
            colocate_with: ColocateWith::Default,
        };
        let plan = catalog.plan_distribution("t", &request)?;
        catalog.commit_distribution(&plan, &Default::default(), &[])?;
        let placement = &catalog.table("t")?.shards[0].placements[0];
        let (id, group) = (placement.placement_id, placement.group_id);
        catalog.commit_files("t", &schema, &[(id, group, file("a"))])?;
        Ok((catalog, id, group))
    }

    #[test]
    fn a_move_switches_the_placement_and_owes_the_old_files() -> Result<()> {
        let (catalog, placement, from) = catalog()?;
        let to = GroupId(if from.0 == 1 { 2 } else { 1 });
        // Its own second shard is on `to` already; shard 0 is not.
        let copy = PlacementCopy {
            placement_id: placement,
            table: "t".into(),
            from,
            to,
            paths: vec!["a".into()],
        };
        catalog.record_cleanup(to, &["a".into()], CleanupPolicy::OnFailure)?;
        let garbage = catalog.move_placements(std::slice::from_ref(&copy), MovedFiles::Copied)?;
        assert_eq!(garbage, vec![(from, file("a"))]);
        let snapshot = catalog.snapshot();
        let moved = &snapshot.table("t").expect("t").shards[0].placements[0];
        assert_eq!((moved.placement_id, moved.group_id), (placement, to));
        assert_eq!(moved.files.len(), 1);
        // The copy's protection is struck, the old file is owed.
        let owed: Vec<_> = snapshot
            .cleanup
            .iter()
            .map(|r| (r.group_id, r.object_name.as_str(), r.policy))
            .collect();
        assert_eq!(owed, vec![(from, "a", CleanupPolicy::DeferredOnSuccess)]);
        // Moving it again from where it was is a conflict.
        assert!(matches!(
            catalog.move_placements(&[copy], MovedFiles::Copied),
            Err(CatalogError::Conflict {
                change: ConcurrentChange::PlacementMoved,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn a_move_on_shared_storage_takes_the_files_along() -> Result<()> {
        let (catalog, placement, from) = catalog()?;
        let to = GroupId(if from.0 == 1 { 2 } else { 1 });
        let copy = PlacementCopy {
            placement_id: placement,
            table: "t".into(),
            from,
            to,
            paths: vec!["a".into()],
        };
        let garbage = catalog.move_placements(&[copy], MovedFiles::Shared)?;
        assert!(garbage.is_empty(), "{garbage:?}");
        let snapshot = catalog.snapshot();
        let moved = &snapshot.table("t").expect("t").shards[0].placements[0];
        assert_eq!((moved.group_id, moved.files.len()), (to, 1));
        assert!(snapshot.cleanup.is_empty(), "{:?}", snapshot.cleanup);
        Ok(())
    }

    #[test]
    fn moving_back_keeps_the_files_it_brings_back() -> Result<()> {
        let (catalog, placement, a) = catalog()?;
        let b = GroupId(if a.0 == 1 { 2 } else { 1 });
        let copy = |from, to| PlacementCopy {
            placement_id: placement,
            table: "t".into(),
            from,
            to,
            paths: vec!["a".into()],
        };
        catalog.move_placements(&[copy(a, b)], MovedFiles::Copied)?;
        // Back before the first move's garbage on `a` was deleted: that record must go, or
        // its deletion would take the live file.
        catalog.move_placements(&[copy(b, a)], MovedFiles::Copied)?;
        let owed: Vec<_> = catalog
            .snapshot()
            .cleanup
            .iter()
            .map(|r| (r.group_id, r.object_name.clone()))
            .collect();
        assert_eq!(owed, vec![(b, "a".to_string())]);
        Ok(())
    }

    #[test]
    fn a_switch_must_take_every_colocated_shard() -> Result<()> {
        let (catalog, placement, from) = catalog()?;
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        catalog.create_table("u", &schema)?;
        let request = DistributionRequest::Distributed {
            column: "id".into(),
            shard_count: Some(2),
            colocate_with: ColocateWith::Table("t".into()),
        };
        let plan = catalog.plan_distribution("u", &request)?;
        catalog.commit_distribution(&plan, &Default::default(), &[])?;
        // Only t's placement: u's shard of the same group would stay behind.
        let copy = PlacementCopy {
            placement_id: placement,
            table: "t".into(),
            from,
            to: GroupId(if from.0 == 1 { 2 } else { 1 }),
            paths: vec!["a".into()],
        };
        assert!(matches!(
            catalog.move_placements(&[copy], MovedFiles::Copied),
            Err(CatalogError::Conflict {
                change: ConcurrentChange::FilesChanged,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn a_file_committed_during_the_copy_refuses_the_switch() -> Result<()> {
        let (catalog, placement, from) = catalog()?;
        let schema = catalog.table("t")?.schema.clone();
        catalog.commit_files("t", &schema, &[(placement, from, file("b"))])?;
        let copy = PlacementCopy {
            placement_id: placement,
            table: "t".into(),
            from,
            to: GroupId(if from.0 == 1 { 2 } else { 1 }),
            paths: vec!["a".into()],
        };
        assert!(matches!(
            catalog.move_placements(std::slice::from_ref(&copy), MovedFiles::Copied),
            Err(CatalogError::Conflict {
                change: ConcurrentChange::FilesChanged,
                ..
            })
        ));
        let replica = PlacementCopy {
            paths: vec!["a".into(), "b".into()],
            ..copy
        };
        catalog.add_placement_copies(&[replica])?;
        let shard = &catalog.table("t")?.shards[0];
        assert_eq!(shard.placements.len(), 2);
        assert_eq!(shard.placements[1].files.len(), 2);
        Ok(())
    }
}
