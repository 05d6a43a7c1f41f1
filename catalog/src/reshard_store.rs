//! Re-sharding distributed tables in the catalog (`alter_distributed_table(t, shard_count =>
//! n)`): [`Catalog::plan_reshard`] reserves the new shards of every table that changes, in
//! one new colocation group, and [`Catalog::commit_reshard`] switches them all in one
//! transaction.
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
use shardfusion_common::ids::{ColocationId, GroupId, PlacementId};

use crate::cleanup::{CleanupPolicy, record_in};
use crate::commit_checks::table_schema;
use crate::distribution_store::{DistributionCommit, insert_colocation};
use crate::error::{CatalogError, ConcurrentChange};
use crate::layout::{self, DistributionPlan, GroupChoice};
use crate::model::{FileMeta, TableKind};
use crate::store::{
    Catalog, files_of_table, insert_files, insert_shards, next_id, nodes_exist, reserve_shards,
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
        let old = snapshot
            .colocations
            .get(colocation_id)
            .cloned()
            .ok_or(CatalogError::ColocationNotFound { id: *colocation_id })?;
        let mut members: Vec<_> = if cascade {
            snapshot
                .tables
                .values()
                .filter(|t| t.kind.colocation_id() == Some(*colocation_id))
                .cloned()
                .collect()
        } else {
            vec![Arc::clone(meta)]
        };
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let workers: Vec<GroupId> = snapshot
            .active_workers()
            .iter()
            .map(|n| n.group_id)
            .collect();
        if workers.is_empty() {
            return Err(CatalogError::NoWorkers);
        }
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
                let current = check_unchanged(tx, plan, table)?;
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
            if let Some(first) = plan.tables.first() {
                insert_colocation(tx, &first.colocation)?;
            }
            for (i, table) in plan.tables.iter().enumerate() {
                switch_shards(tx, table)?;
                insert_files(tx, written[i].iter().map(|(p, f)| (p, f)))?;
            }
            record_in(tx, &garbage, CleanupPolicy::DeferredOnSuccess)?;
            Ok(DistributionCommit::Committed { garbage })
        })
    }
}

/// Checks that `table` is still the distributed table `plan` re-shards; returns its files.
fn check_unchanged(
    tx: &rusqlite::Transaction<'_>,
    plan: &ReshardPlan,
    table: &DistributionPlan,
) -> Result<Vec<(GroupId, FileMeta)>> {
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
    files_of_table(tx, table.table_id)
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

fn conflict(table: &DistributionPlan, change: ConcurrentChange) -> CatalogError {
    CatalogError::Conflict {
        table: table.table_name.clone(),
        change,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::layout::{ColocateWith, DistributionRequest};

    fn file(path: &str) -> FileMeta {
        FileMeta {
            path: path.into(),
            row_count: 3,
            byte_size: 30,
            stats: None,
        }
    }

    /// Tables `a` and `b`, co-located in 2 shards over 2 nodes, one file in each shard 0.
    fn catalog() -> Result<Catalog> {
        let catalog = Catalog::open_in_memory()?;
        catalog.add_node("h", 1, None)?;
        catalog.add_node("h", 2, None)?;
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        for name in ["a", "b"] {
            catalog.create_table(name, &schema)?;
            let request = DistributionRequest::Distributed {
                column: "id".into(),
                shard_count: Some(2),
                colocate_with: ColocateWith::Default,
            };
            let plan = catalog.plan_distribution(name, &request)?;
            catalog.commit_distribution(&plan, &Default::default(), &[])?;
            let placement = &catalog.table(name)?.shards[0].placements[0];
            let target = (placement.placement_id, placement.group_id, file(name));
            catalog.commit_files(name, &schema, &[target])?;
        }
        Ok(catalog)
    }

    fn paths(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
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
