//! [`FileChange`]: files a statement took out of a table and files it added, and the one
//! transaction that commits the changes of many statements and tables together.
//!
//! Every write is a file change: an `INSERT` or `COPY` adds files; an `UPDATE` or `DELETE`
//! swaps the files it rewrote for their new versions; a `TRUNCATE` takes out every file.
//! A multi-statement transaction keeps its statements' changes until `COMMIT`
//! ([`Catalog::commit_file_changes`] applies all of them in one SQLite transaction, so other
//! sessions see all of them or none), and meanwhile reads a snapshot with them applied
//! ([`CatalogSnapshot::with_file_changes`]), so it sees its own writes.
//!
//! Each change is checked as a single statement's commit is (`commit_checks`): a file it takes
//! out must still be committed — if another session's `UPDATE`, `DELETE`, `TRUNCATE` or
//! compaction got there first, the whole commit is refused with
//! [`ConcurrentChange::RowsRemoved`] and nothing changes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use rusqlite::{OptionalExtension, Transaction, params};
use shardfusion_common::ids::{GroupId, PlacementId};

use crate::commit_checks::check_writable;
use crate::error::{CatalogError, ConcurrentChange};
use crate::model::{CatalogSnapshot, FileMeta, TableMeta};
use crate::store::{Catalog, insert_files};
use crate::write_fence::WriteFences;

type Result<T> = std::result::Result<T, CatalogError>;

/// One table's files taken out and added, by one statement or a whole transaction.
#[derive(Debug, Clone)]
pub struct FileChange {
    pub table: String,
    /// The columns the added files were written with.
    pub written: Schema,
    /// Committed files taken out: placement, its node group, path.
    pub removed: Vec<(PlacementId, GroupId, String)>,
    /// New files: placement, the node group they were written to, the file.
    pub added: Vec<(PlacementId, GroupId, FileMeta)>,
}

impl Catalog {
    /// Applies every change in one catalog transaction: all of them or none. Returns the
    /// files taken out, with their node groups (garbage once no older statement reads them).
    /// Refused with [`ConcurrentChange::RowsRemoved`] if a file to take out is no longer
    /// committed, and as any commit is ([`Catalog::commit_files`]) if a table was dropped or
    /// altered, or a placement written to moved, is being moved or gained a copy.
    pub fn commit_file_changes(&self, changes: &[FileChange]) -> Result<Vec<(GroupId, FileMeta)>> {
        self.write(|tx| {
            let mut old = Vec::new();
            for change in changes {
                old.extend(swap_files_in(tx, &self.fences, change)?);
            }
            Ok(old)
        })
    }
}

/// Takes `change.removed` out of its table and adds `change.added`, inside `tx`.
pub(crate) fn swap_files_in(
    tx: &Transaction<'_>,
    fences: &WriteFences,
    change: &FileChange,
) -> Result<Vec<(GroupId, FileMeta)>> {
    let table = change.table.as_str();
    // A placement whose files were all deleted gets no new file, but changes as much.
    let changed = (change.added.iter().map(|(p, g, _)| (*p, *g)))
        .chain(change.removed.iter().map(|(p, g, _)| (*p, *g)));
    check_writable(tx, fences, table, &change.written, changed)?;
    let mut old = Vec::with_capacity(change.removed.len());
    for (placement, _, path) in &change.removed {
        let found = tx
            .query_row(
                "SELECT p.groupid, f.row_count, f.byte_size FROM shard_files f \
                 JOIN placements p USING (placementid) \
                 WHERE f.placementid = ?1 AND f.path = ?2",
                params![placement.0, path],
                |r| {
                    Ok((
                        GroupId(r.get(0)?),
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                    ))
                },
            )
            .optional()?;
        let Some((group, row_count, byte_size)) = found else {
            return Err(CatalogError::Conflict {
                table: table.to_string(),
                change: ConcurrentChange::RowsRemoved,
            });
        };
        tx.execute(
            "DELETE FROM shard_files WHERE placementid = ?1 AND path = ?2",
            params![placement.0, path],
        )?;
        let file = FileMeta {
            path: path.clone(),
            row_count,
            byte_size,
            stats: None,
        };
        old.push((group, file));
    }
    insert_files(tx, change.added.iter().map(|(p, _, f)| (p, f)))?;
    Ok(old)
}

impl CatalogSnapshot {
    /// This state with `changes` applied in order, as the transaction that made them sees
    /// it before committing them. It keeps this snapshot's version: it is never published,
    /// and plans made on it are not shared with other sessions.
    pub fn with_file_changes(&self, changes: &[FileChange]) -> CatalogSnapshot {
        let mut tables = self.tables.clone();
        let mut by_table: BTreeMap<&str, Vec<&FileChange>> = BTreeMap::new();
        for change in changes {
            by_table.entry(&change.table).or_default().push(change);
        }
        for (name, changes) in by_table {
            let Some(table) = tables.get_mut(name) else {
                continue;
            };
            let mut changed = TableMeta::clone(table);
            for change in changes {
                apply(&mut changed, change);
            }
            *table = Arc::new(changed);
        }
        CatalogSnapshot {
            version: self.version,
            nodes: self.nodes.clone(),
            tables,
            colocations: self.colocations.clone(),
            cleanup: self.cleanup.clone(),
            roles: Arc::clone(&self.roles),
            sequences: self.sequences.clone(),
            views: self.views.clone(),
        }
    }
}

impl TableMeta {
    /// This table with `change` (one of its own) applied to its placements' files.
    pub fn with_change(&self, change: &FileChange) -> TableMeta {
        let mut changed = self.clone();
        apply(&mut changed, change);
        changed
    }
}

fn apply(table: &mut TableMeta, change: &FileChange) {
    let removed: HashSet<(PlacementId, &str)> = change
        .removed
        .iter()
        .map(|(p, _, path)| (*p, path.as_str()))
        .collect();
    for placement in table
        .shards
        .iter_mut()
        .flat_map(|s| s.placements.iter_mut())
    {
        let id = placement.placement_id;
        placement
            .files
            .retain(|f| !removed.contains(&(id, f.path.as_str())));
        let added = change.added.iter().filter(|(p, _, _)| *p == id);
        placement.files.extend(added.map(|(_, _, f)| f.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{add_file, distributed, file, id_schema};

    /// Changes to two tables commit together, or not at all when one of them is refused.
    #[test]
    fn changes_to_several_tables_commit_all_or_nothing() -> Result<()> {
        let catalog = distributed(&["a", "b"])?;
        add_file(&catalog, "a", 0, "a0")?;
        let a = catalog.table("a")?.shards[0].placements[0].clone();
        let b = catalog.table("b")?.shards[1].placements[0].clone();
        let add_b = FileChange {
            table: "b".into(),
            written: id_schema(),
            removed: vec![],
            added: vec![(b.placement_id, b.group_id, file("b1"))],
        };
        let gone = FileChange {
            table: "a".into(),
            written: id_schema(),
            removed: vec![(a.placement_id, a.group_id, "missing".into())],
            added: vec![],
        };
        let refused = catalog.commit_file_changes(&[add_b.clone(), gone]);
        assert!(matches!(
            refused,
            Err(CatalogError::Conflict {
                change: ConcurrentChange::RowsRemoved,
                ..
            })
        ));
        assert_eq!(
            catalog.table("b")?.row_count(),
            0,
            "nothing of a refused commit"
        );
        let swap_a = FileChange {
            table: "a".into(),
            written: id_schema(),
            removed: vec![(a.placement_id, a.group_id, "a0".into())],
            added: vec![(a.placement_id, a.group_id, file("a1"))],
        };
        let old = catalog.commit_file_changes(&[add_b, swap_a])?;
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].1.path, "a0");
        let a_files = &catalog.table("a")?.shards[0].placements[0].files;
        assert_eq!(a_files.iter().map(|f| &f.path).collect::<Vec<_>>(), ["a1"]);
        assert_eq!(catalog.table("b")?.row_count(), 3);
        Ok(())
    }

    /// A snapshot with changes applied lists the added files and not the removed ones, and
    /// leaves the committed snapshot as it was.
    #[test]
    fn a_snapshot_with_changes_sees_them_and_the_original_does_not() -> Result<()> {
        let catalog = distributed(&["t"])?;
        add_file(&catalog, "t", 0, "old")?;
        let committed = catalog.snapshot();
        let placement = committed.tables["t"].shards[0].placements[0].clone();
        let (p, g) = (placement.placement_id, placement.group_id);
        let changes = [
            FileChange {
                table: "t".into(),
                written: id_schema(),
                removed: vec![],
                added: vec![(p, g, file("new"))],
            },
            FileChange {
                table: "t".into(),
                written: id_schema(),
                removed: vec![(p, g, "old".into())],
                added: vec![],
            },
        ];
        let seen = committed.with_file_changes(&changes);
        let files = &seen.tables["t"].shards[0].placements[0].files;
        assert_eq!(files.iter().map(|f| &f.path).collect::<Vec<_>>(), ["new"]);
        assert_eq!(seen.version, committed.version);
        let files = &committed.tables["t"].shards[0].placements[0].files;
        assert_eq!(files.iter().map(|f| &f.path).collect::<Vec<_>>(), ["old"]);
        Ok(())
    }
}
