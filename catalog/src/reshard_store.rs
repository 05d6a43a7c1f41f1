//! Re-sharding distributed tables in the catalog (`alter_distributed_table(t, shard_count =>
//! n)`): [`Catalog::plan_reshard`] reserves the new shards of every table that changes, in
//! one new colocation group, and [`Catalog::commit_reshard`] switches them all in one
//! transaction. A tenant isolation ([`crate::tenant_isolation_store`]) is a re-shard of one
//! shard group: its plan replaces one shard of every table of the group ([`ShardSplit`]) and
//! the group keeps its id.
//!
//! As for a distribution, the rows are rewritten between the two while other statements run,
//! so the commit checks, for each table, everything the rewrite relied on: the table is the
//! one planned (not dropped, still distributed by the same column in the same colocation
//! group, same columns), and its files are exactly the ones rewritten. More files (INSERTs
//! committed meanwhile) make the caller rewrite those too and commit again; fewer (TRUNCATE)
//! refuse the re-shard with a retryable conflict. When co-located tables move together, a
//! table that joined their group meanwhile refuses it too: the group must stay whole.

use std::collections::BTreeSet;
use std::sync::Arc;

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use shardfusion_common::ids::{ColocationId, GroupId, PlacementId, ShardId};

use crate::cleanup::{CleanupPolicy, record_in};
use crate::commit_checks::table_schema;
use crate::distribution_store::{DistributionCommit, insert_colocation};
use crate::error::{CatalogError, ConcurrentChange};
use crate::layout::{self, DistributionPlan, GroupChoice};
use crate::model::{CatalogSnapshot, Colocation, FileMeta, TableKind, TableMeta};
use crate::store::{
    Catalog, files_of_shard, files_of_table, insert_files, insert_shards, next_id, nodes_exist,
    reserve_shards,
};

type Result<T> = std::result::Result<T, CatalogError>;

/// New shards for one or more distributed tables, all in one new colocation group.
#[derive(Debug, Clone)]
pub struct ReshardPlan {
    /// One distribution plan per table, in the order asked.
    pub tables: Vec<DistributionPlan>,
    /// The colocation group the tables leave.
    pub old_colocation: ColocationId,
    /// Whether every table of the old group moves (`cascade_to_colocated`).
    pub whole_group: bool,
    /// For a split: the one shard of each table the new shards replace (else all are).
    pub split: Option<ShardSplit>,
}

/// The shard of each table a split replaces; the new shards of the plan's tables cover its
/// hash range, and take its place (and index) in the table's shard list.
#[derive(Debug, Clone)]
pub struct ShardSplit {
    /// The replaced shard of each table, in the order of [`ReshardPlan::tables`].
    pub sources: Vec<ShardId>,
}

impl ReshardPlan {
    /// Whether the rows of shard `shard` of table `table` (its position in
    /// [`ReshardPlan::tables`]) move.
    pub fn replaces(&self, table: usize, shard: ShardId) -> bool {
        match &self.split {
            None => true,
            Some(split) => split.sources.get(table) == Some(&shard),
        }
    }
}

impl Catalog {
    /// Plans `shard_count` new shards for `table`, and for every table co-located with it
    /// when `cascade` (the group stays together), in a new colocation group whose shards are
    /// spread round-robin over the active workers. Nothing is visible until
    /// [`Catalog::commit_reshard`].
    pub fn plan_reshard(
        &self,
        table: &str,
        shard_count: usize,
        cascade: bool,
    ) -> Result<ReshardPlan> {
        if !(1..=64_000).contains(&shard_count) {
            return Err(CatalogError::BadShardCount {
                given: shard_count as i64,
            });
        }
        let snapshot = self.snapshot();
        let (meta, old) = distributed_table(&snapshot, table)?;
        let colocation_id = &old.colocation_id;
        let mut members: Vec<_> = if cascade {
            snapshot
                .tables
                .values()
                .filter(|t| t.kind.colocation_id() == Some(*colocation_id))
                .cloned()
                .collect()
        } else {
            vec![meta]
        };
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let workers = layout::worker_groups(&snapshot)?;
        let groups = layout::assign_groups(shard_count, &workers, None);
        let ranges = layout::ranges(shard_count);
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = ColocationId(next_id(&tx, "colocationid", 1)? as i32);
        let colocation = layout::new_colocation(id, shard_count, old.distribution_column_type);
        let mut tables = Vec::with_capacity(members.len());
        for member in members {
            let TableKind::Distributed { column, .. } = &member.kind else {
                continue;
            };
            tables.push(DistributionPlan {
                table_id: member.table_id,
                table_name: member.name.clone(),
                schema: Arc::clone(&member.schema),
                kind: TableKind::Distributed {
                    column: column.clone(),
                    colocation_id: id,
                },
                colocation: colocation.clone(),
                group_choice: GroupChoice::Isolated,
                shards: reserve_shards(&tx, &groups, &ranges)?,
            });
        }
        tx.commit()?;
        Ok(ReshardPlan {
            tables,
            old_colocation: *colocation_id,
            whole_group: cascade,
            split: None,
        })
    }

    /// Switches every table of `plan` to its new shards, if each table's files are exactly
    /// `moved[i]` (whose rows are in `written[i]`); see the module docs for what else it
    /// checks. On success the old files are garbage (recorded in `pg_dist_cleanup`).
    pub fn commit_reshard(
        &self,
        plan: &ReshardPlan,
        moved: &[BTreeSet<String>],
        written: &[Vec<(PlacementId, FileMeta)>],
    ) -> Result<DistributionCommit> {
        self.write(|tx| {
            let mut garbage = Vec::new();
            let mut arrived = false;
            for (i, table) in plan.tables.iter().enumerate() {
                check_unchanged(tx, plan, table)?;
                let current = match &plan.split {
                    None => files_of_table(tx, table.table_id)?,
                    Some(split) => {
                        let source = split.sources[i];
                        if shard_index_of(tx, source)?.is_none() {
                            return Err(conflict(table, ConcurrentChange::ShardsReplaced));
                        }
                        // The new shards go where the replaced one was when planned.
                        let planned: BTreeSet<GroupId> = table
                            .shards
                            .iter()
                            .flat_map(|s| s.placements.iter().map(|p| p.group_id))
                            .collect();
                        if placement_groups(tx, source)? != planned {
                            return Err(conflict(table, ConcurrentChange::PlacementMoved));
                        }
                        files_of_shard(tx, source)?
                    }
                };
                let current_paths: BTreeSet<&str> =
                    current.iter().map(|(_, f)| f.path.as_str()).collect();
                let moved = &moved[i];
                if moved.iter().any(|p| !current_paths.contains(p.as_str())) {
                    return Err(conflict(table, ConcurrentChange::RowsRemoved));
                }
                arrived |= current_paths.len() > moved.len();
                garbage.extend(current);
            }
            if plan.whole_group {
                let members: i64 = tx.query_row(
                    "SELECT count(*) FROM tables WHERE colocationid = ?1",
                    params![plan.old_colocation.0],
                    |r| r.get(0),
                )?;
                if let Some(first) = plan.tables.first()
                    && members as usize != plan.tables.len()
                {
                    return Err(conflict(first, ConcurrentChange::ShardsReplaced));
                }
            }
            if arrived {
                return Ok(DistributionCommit::FilesArrived);
            }
            // The new placements are not in the catalog yet: a node removed meanwhile would
            // not have been refused, and its shards would point nowhere.
            for table in &plan.tables {
                if !nodes_exist(tx, &table.shards)? {
                    return Err(conflict(table, ConcurrentChange::NodeRemoved));
                }
            }
            match &plan.split {
                None => {
                    if let Some(first) = plan.tables.first() {
                        insert_colocation(tx, &first.colocation)?;
                    }
                    for table in &plan.tables {
                        switch_shards(tx, table)?;
                    }
                }
                Some(split) => {
                    for (i, table) in plan.tables.iter().enumerate() {
                        split_shard(tx, table, split.sources[i])?;
                    }
                    let added = plan.tables.first().map_or(0, |t| t.shards.len() as i64 - 1);
                    tx.execute(
                        "UPDATE colocations SET shardcount = shardcount + ?1 \
                         WHERE colocationid = ?2",
                        params![added, plan.old_colocation.0],
                    )?;
                }
            }
            for files in written {
                insert_files(tx, files.iter().map(|(p, f)| (p, f)))?;
            }
            record_in(tx, &garbage, CleanupPolicy::DeferredOnSuccess)?;
            Ok(DistributionCommit::Committed { garbage })
        })
    }
}

/// The distributed table `table` and its colocation group, as `snapshot` has them.
pub(crate) fn distributed_table(
    snapshot: &CatalogSnapshot,
    table: &str,
) -> Result<(Arc<TableMeta>, Colocation)> {
    let meta = snapshot
        .table(table)
        .ok_or_else(|| CatalogError::TableNotFound {
            name: table.to_string(),
        })?;
    let TableKind::Distributed { colocation_id, .. } = &meta.kind else {
        return Err(CatalogError::NotDistributed {
            name: table.to_string(),
        });
    };
    let colocation = snapshot
        .colocations
        .get(colocation_id)
        .cloned()
        .ok_or(CatalogError::ColocationNotFound { id: *colocation_id })?;
    Ok((Arc::clone(meta), colocation))
}

/// Checks that `table` is still the distributed table `plan` re-shards.
fn check_unchanged(
    tx: &rusqlite::Transaction<'_>,
    plan: &ReshardPlan,
    table: &DistributionPlan,
) -> Result<()> {
    let row: Option<(String, Option<String>, Option<i32>)> = tx
        .query_row(
            "SELECT kind, dist_column, colocationid FROM tables WHERE table_id = ?1",
            params![table.table_id.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (kind, column, colocation) = row.ok_or(conflict(table, ConcurrentChange::Dropped))?;
    let planned_column = match &table.kind {
        TableKind::Distributed { column, .. } => Some(column.clone()),
        _ => None,
    };
    if kind != "distributed"
        || column != planned_column
        || colocation != Some(plan.old_colocation.0)
    {
        return Err(conflict(table, ConcurrentChange::ShardsReplaced));
    }
    let schema = table_schema(tx, table.table_id, &table.table_name)?;
    if schema.fields() != table.schema.fields() {
        return Err(conflict(table, ConcurrentChange::ColumnsChanged));
    }
    Ok(())
}

/// Replaces `table`'s shards (with their placements and files) by the planned ones.
fn switch_shards(tx: &rusqlite::Transaction<'_>, table: &DistributionPlan) -> Result<()> {
    tx.execute(
        "DELETE FROM shards WHERE table_id = ?1",
        params![table.table_id.0],
    )?;
    tx.execute(
        "UPDATE tables SET colocationid = ?1 WHERE table_id = ?2",
        params![table.colocation.colocation_id.0, table.table_id.0],
    )?;
    insert_shards(tx, table.table_id, &table.shards)
}

/// Replaces shard `source` of `table` (with its placements and files) by the planned shards,
/// which take its index; the shards after it move up.
fn split_shard(
    tx: &rusqlite::Transaction<'_>,
    table: &DistributionPlan,
    source: ShardId,
) -> Result<()> {
    let index = shard_index_of(tx, source)?
        .ok_or_else(|| conflict(table, ConcurrentChange::ShardsReplaced))?;
    let added = table.shards.len() as i64 - 1;
    tx.execute("DELETE FROM shards WHERE shardid = ?1", params![source.0])?;
    tx.execute(
        "UPDATE shards SET shard_index = shard_index + ?1 WHERE table_id = ?2 AND shard_index > ?3",
        params![added, table.table_id.0, index as i64],
    )?;
    let mut shards = table.shards.clone();
    for (offset, shard) in shards.iter_mut().enumerate() {
        shard.index = index + offset;
    }
    insert_shards(tx, table.table_id, &shards)
}

/// The node groups holding shard `shard`.
fn placement_groups(tx: &rusqlite::Transaction<'_>, shard: ShardId) -> Result<BTreeSet<GroupId>> {
    let mut stmt = tx.prepare("SELECT groupid FROM placements WHERE shardid = ?1")?;
    let groups = stmt.query_map(params![shard.0], |r| Ok(GroupId(r.get(0)?)))?;
    Ok(groups.collect::<std::result::Result<_, _>>()?)
}

/// The index of shard `shard` in its table, if it still exists.
fn shard_index_of(tx: &rusqlite::Transaction<'_>, shard: ShardId) -> Result<Option<usize>> {
    Ok(tx
        .query_row(
            "SELECT shard_index FROM shards WHERE shardid = ?1",
            params![shard.0],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map(|i| i as usize))
}

pub(crate) fn conflict(table: &DistributionPlan, change: ConcurrentChange) -> CatalogError {
    CatalogError::Conflict {
        table: table.table_name.clone(),
        change,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{add_file, distributed, file, paths};

    /// Tables `a` and `b`, co-located in 2 shards over 2 nodes, one file in each shard 0.
    fn catalog() -> Result<Catalog> {
        let catalog = distributed(&["a", "b"])?;
        add_file(&catalog, "a", 0, "a")?;
        add_file(&catalog, "b", 0, "b")?;
        Ok(catalog)
    }

    #[test]
    fn a_cascade_switches_the_whole_group_at_once() -> Result<()> {
        let catalog = catalog()?;
        let plan = catalog.plan_reshard("a", 4, true)?;
        assert_eq!(plan.tables.len(), 2);
        // Nothing read yet: the tables have files the caller has not seen.
        let none = vec![BTreeSet::new(), BTreeSet::new()];
        assert!(matches!(
            catalog.commit_reshard(&plan, &none, &[vec![], vec![]])?,
            DistributionCommit::FilesArrived
        ));
        let written: Vec<Vec<(PlacementId, FileMeta)>> = plan
            .tables
            .iter()
            .map(|t| vec![(t.shards[1].placements[0].placement_id, file("new"))])
            .collect();
        let moved = vec![paths(&["a"]), paths(&["b"])];
        let DistributionCommit::Committed { garbage } =
            catalog.commit_reshard(&plan, &moved, &written)?
        else {
            panic!("committed");
        };
        assert_eq!(garbage.len(), 2);
        let snapshot = catalog.snapshot();
        let (a, b) = (
            snapshot.table("a").expect("a"),
            snapshot.table("b").expect("b"),
        );
        assert_eq!((a.shards.len(), b.shards.len()), (4, 4));
        assert_eq!(a.kind.colocation_id(), b.kind.colocation_id());
        let group = a.kind.colocation_id().expect("distributed");
        assert_eq!(snapshot.colocations[&group].shard_count, 4);
        assert_eq!(a.shards[1].placements[0].files[0].path, "new");
        Ok(())
    }

    #[test]
    fn a_node_removed_during_the_rewrite_refuses_the_switch() -> Result<()> {
        let catalog = catalog()?;
        catalog.add_node("h", 3, None)?;
        let plan = catalog.plan_reshard("a", 3, true)?;
        // The planned shards are not in the catalog yet, so nothing stops the removal.
        catalog.remove_node("h", 3)?;
        let moved = vec![paths(&["a"]), paths(&["b"])];
        assert!(matches!(
            catalog.commit_reshard(&plan, &moved, &[vec![], vec![]]),
            Err(CatalogError::Conflict {
                change: ConcurrentChange::NodeRemoved,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn removed_rows_and_new_members_refuse_the_switch() -> Result<()> {
        let catalog = catalog()?;
        let plan = catalog.plan_reshard("a", 3, true)?;
        let moved = vec![paths(&["a", "gone"]), paths(&["b"])];
        assert!(matches!(
            catalog.commit_reshard(&plan, &moved, &[vec![], vec![]]),
            Err(CatalogError::Conflict {
                change: ConcurrentChange::RowsRemoved,
                ..
            })
        ));
        // `a` alone leaves; `b` keeps its 2 shards and group.
        let alone = catalog.plan_reshard("a", 3, false)?;
        let DistributionCommit::Committed { .. } =
            catalog.commit_reshard(&alone, &[paths(&["a"])], &[vec![]])?
        else {
            panic!("committed");
        };
        let snapshot = catalog.snapshot();
        assert_eq!(snapshot.table("b").expect("b").shards.len(), 2);
        assert_ne!(
            snapshot.table("a").expect("a").kind.colocation_id(),
            snapshot.table("b").expect("b").kind.colocation_id()
        );
        // The cascade planned before `a` left no longer matches the group.
        let moved = vec![paths(&["a"]), paths(&["b"])];
        assert!(
            catalog
                .commit_reshard(&plan, &moved, &[vec![], vec![]])
                .is_err()
        );
        Ok(())
    }
}
