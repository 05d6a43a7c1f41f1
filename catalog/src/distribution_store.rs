//! Distributing a table in the catalog: [`Catalog::plan_distribution`] reserves the new shards
//! before any row moves, and [`Catalog::commit_distribution`] switches the table over in one
//! transaction.
//!
//! The rows move between the two while other statements keep running, so the commit checks,
//! inside its write transaction, everything the plan and the move relied on:
//! - the table still exists, is still local and has the columns the rows were moved with;
//! - its files are exactly the files that were moved. More files (INSERTs committed during
//!   the move) are not an error: the caller moves them too and commits again. Fewer (a
//!   TRUNCATE or a replacing load won) refuse the distribution with a retryable conflict;
//! - the nodes the shards were placed on are still there;
//! - the colocation group is chosen here, not from the plan's snapshot: the planned group if
//!   it still exists; for default co-location, else an equal group (same shard count, column
//!   type and placements) created meanwhile; else the planned group is (re)created, so a
//!   group whose last table was dropped during the move comes back with the table joining it.
//!   A table joining a group takes its members' hash ranges; if a tenant isolation split them
//!   during the move, the commit refuses with a retryable conflict.

use std::collections::BTreeSet;
use std::sync::Arc;

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use shardfusion_common::hashing::{ShardRanges, is_distributable};
use shardfusion_common::ids::{ColocationId, GroupId, PlacementId};

use crate::cleanup::{CleanupPolicy, record_in};
use crate::commit_checks::table_schema;
use crate::error::{CatalogError, ConcurrentChange};
use crate::layout::{
    self, ColocateWith, DistributionPlan, DistributionRequest, GroupChoice, NewShard,
};
use crate::model::{CatalogSnapshot, Colocation, FileMeta, TableKind};
use crate::store::{
    Catalog, DEFAULT_SHARD_COUNT, files_of_table, insert_files, insert_shards, next_id,
    nodes_exist, reserve_shards,
};

type Result<T> = std::result::Result<T, CatalogError>;

/// What became of an attempt to commit a distribution.
#[derive(Debug)]
pub enum DistributionCommit {
    /// The table is distributed; these are its former local files, now garbage.
    Committed { garbage: Vec<(GroupId, FileMeta)> },
    /// Files were committed to the table after the caller last looked; nothing changed. The
    /// caller moves those files too and commits again.
    FilesArrived,
}

impl Catalog {
    /// Decides and reserves the shards and placements of a table about to be distributed.
    /// Nothing becomes visible until [`Catalog::commit_distribution`], which re-checks what
    /// this read.
    pub fn plan_distribution(
        &self,
        name: &str,
        request: &DistributionRequest,
    ) -> Result<DistributionPlan> {
        if *request == DistributionRequest::Local {
            return self.plan_undistribution(name);
        }
        let snapshot = self.snapshot();
        let table = snapshot
            .table(name)
            .ok_or_else(|| CatalogError::TableNotFound {
                name: name.to_string(),
            })?;
        if table.kind != TableKind::Local {
            return Err(CatalogError::AlreadyDistributed {
                name: name.to_string(),
            });
        }
        let workers = layout::worker_groups(&snapshot)?;
        // The group to join, if any, with the placements of one of its tables to mirror.
        let (kind_of, shard_count, column_type, target, group_choice) = match request {
            DistributionRequest::Local => unreachable!("planned by plan_undistribution"),
            DistributionRequest::Reference => {
                let existing = snapshot
                    .colocations
                    .values()
                    .find(|c| c.shard_count == 1 && c.distribution_column_type.is_empty())
                    .cloned();
                (None, 1, String::new(), existing, GroupChoice::Default)
            }
            DistributionRequest::Distributed {
                column,
                shard_count,
                colocate_with,
            } => {
                let field = table.schema.field_with_name(column).map_err(|_| {
                    CatalogError::ColumnNotFound {
                        table: name.to_string(),
                        column: column.clone(),
                    }
                })?;
                if !is_distributable(field.data_type()) {
                    return Err(CatalogError::BadDistributionColumn {
                        table: name.to_string(),
                        column: column.clone(),
                        reason: format!(
                            "type {} cannot be hashed; use an integer, text or date column",
                            field.data_type()
                        ),
                    });
                }
                crate::unique_key_store::check_distributable(table, column)?;
                let type_name = field.data_type().to_string();
                if let Some(n) = shard_count
                    && (*n < 1 || *n > 64_000)
                {
                    return Err(CatalogError::BadShardCount { given: *n as i64 });
                }
                let (target, choice) = match colocate_with {
                    ColocateWith::None => (None, GroupChoice::Isolated),
                    ColocateWith::Default => {
                        let count = shard_count.unwrap_or(DEFAULT_SHARD_COUNT) as i32;
                        // A group with an isolated tenant has uneven ranges: only a table
                        // that names one of its members joins it.
                        let existing = snapshot
                            .colocations
                            .values()
                            .find(|c| {
                                c.shard_count == count
                                    && c.distribution_column_type == type_name
                                    && c.replication_factor == 1
                                    && member_ranges(&snapshot, c.colocation_id)
                                        .is_none_or(|r| r.is_even())
                            })
                            .cloned();
                        (existing, GroupChoice::Default)
                    }
                    ColocateWith::Table(other) => {
                        let other_table =
                            snapshot
                                .table(other)
                                .ok_or_else(|| CatalogError::TableNotFound {
                                    name: other.clone(),
                                })?;
                        let bad = |reason: &str| CatalogError::BadColocation {
                            table: name.to_string(),
                            other: other.clone(),
                            reason: reason.to_string(),
                        };
                        let TableKind::Distributed { colocation_id, .. } = other_table.kind else {
                            return Err(bad("it is not a distributed table"));
                        };
                        let c = snapshot
                            .colocations
                            .get(&colocation_id)
                            .cloned()
                            .ok_or(CatalogError::ColocationNotFound { id: colocation_id })?;
                        if c.distribution_column_type != type_name {
                            return Err(bad(&format!(
                                "distribution column types differ ({} vs {type_name})",
                                c.distribution_column_type
                            )));
                        }
                        if let Some(n) = shard_count
                            && *n as i32 != c.shard_count
                        {
                            return Err(bad(&format!(
                                "shard counts differ ({} vs {n})",
                                c.shard_count
                            )));
                        }
                        (Some(c), GroupChoice::Table)
                    }
                };
                let count = match &target {
                    Some(c) => c.shard_count as usize,
                    None => shard_count.unwrap_or(DEFAULT_SHARD_COUNT),
                };
                (Some(column.clone()), count, type_name, target, choice)
            }
        };
        let mirror = target.as_ref().and_then(|c| {
            snapshot
                .tables
                .values()
                .find(|t| t.kind.colocation_id() == Some(c.colocation_id))
                .map(|t| {
                    t.shards
                        .iter()
                        .map(|s| s.placements.iter().map(|p| p.group_id).collect())
                        .collect::<Vec<Vec<GroupId>>>()
                })
        });
        let groups = match &kind_of {
            // A reference table's one shard is on every worker.
            None => vec![workers.clone()],
            Some(_) => layout::assign_groups(shard_count, &workers, mirror.as_deref()),
        };
        // A table joining a group takes its members' ranges (uneven after a tenant isolation).
        let joined = target
            .as_ref()
            .and_then(|c| member_ranges(&snapshot, c.colocation_id))
            .filter(|r| r.len() == shard_count);
        let ranges = match (&kind_of, joined) {
            (None, _) => vec![None],
            (Some(_), Some(joined)) => (0..shard_count).map(|i| Some(joined.range(i))).collect(),
            (Some(_), None) => layout::ranges(shard_count),
        };

        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (colocation, shards) = self.taking_ids(|| -> Result<_> {
            let colocation = match target {
                Some(c) => c,
                None => {
                    let id = ColocationId(next_id(&tx, "colocationid", 1)? as i32);
                    layout::new_colocation(id, shard_count, column_type)
                }
            };
            Ok((colocation, reserve_shards(&tx, &groups, &ranges)?))
        })?;
        tx.commit()?;
        let colocation_id = colocation.colocation_id;
        Ok(DistributionPlan {
            table_id: table.table_id,
            table_name: name.to_string(),
            schema: Arc::clone(&table.schema),
            kind: match kind_of {
                Some(column) => TableKind::Distributed {
                    column,
                    colocation_id,
                },
                None => TableKind::Reference { colocation_id },
            },
            colocation,
            group_choice,
            shards,
        })
    }

    /// Makes a planned distribution real, if the table's files are exactly `moved` (the paths
    /// of the local files whose rows are in `written`); see the module docs for what else it
    /// checks and how it chooses the colocation group.
    pub fn commit_distribution(
        &self,
        plan: &DistributionPlan,
        moved: &BTreeSet<String>,
        written: &[(PlacementId, FileMeta)],
    ) -> Result<DistributionCommit> {
        let conflict = |change| CatalogError::Conflict {
            table: plan.table_name.clone(),
            change,
        };
        self.write(|tx| {
            let kind: String = tx
                .query_row(
                    "SELECT kind FROM tables WHERE table_id = ?1",
                    params![plan.table_id.0],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or(conflict(ConcurrentChange::Dropped))?;
            // A distribution needs a local table, an undistribution a distributed one.
            let undistributing = plan.kind == TableKind::Local;
            if undistributing && kind == "local" {
                return Err(CatalogError::NotDistributed {
                    name: plan.table_name.clone(),
                });
            }
            if !undistributing && kind != "local" {
                return Err(CatalogError::AlreadyDistributed {
                    name: plan.table_name.clone(),
                });
            }
            let schema = table_schema(tx, plan.table_id, &plan.table_name)?;
            if schema.fields() != plan.schema.fields() {
                return Err(conflict(ConcurrentChange::ColumnsChanged));
            }
            let current = files_of_table(tx, plan.table_id)?;
            let current_paths: BTreeSet<&str> = current.iter().map(|(_, f)| f.path.as_str()).collect();
            if moved.iter().any(|p| !current_paths.contains(p.as_str())) {
                return Err(conflict(ConcurrentChange::RowsRemoved));
            }
            if current_paths.len() > moved.len() {
                return Ok(DistributionCommit::FilesArrived);
            }
            if !undistributing && !nodes_exist(tx, &plan.shards)? {
                return Err(conflict(ConcurrentChange::NodeRemoved));
            }
            let colocation_id = match undistributing {
                true => None,
                false => Some(choose_colocation(tx, plan)?.0),
            };
            tx.execute(
                "DELETE FROM shards WHERE table_id = ?1",
                params![plan.table_id.0],
            )?;
            let (kind, column) = match &plan.kind {
                TableKind::Local => ("local", None),
                TableKind::Distributed { column, .. } => ("distributed", Some(column.clone())),
                TableKind::Reference { .. } => ("reference", None),
            };
            tx.execute(
                "UPDATE tables SET kind = ?1, dist_column = ?2, colocationid = ?3 WHERE table_id = ?4",
                params![kind, column, colocation_id, plan.table_id.0],
            )?;
            insert_shards(tx, plan.table_id, &plan.shards)?;
            insert_files(tx, written.iter().map(|(p, f)| (p, f)))?;
            record_in(tx, &current, CleanupPolicy::DeferredOnSuccess)?;
            Ok(DistributionCommit::Committed { garbage: current })
        })
    }
}

/// The colocation group the table joins, chosen under the write lock (see the module docs).
fn choose_colocation(
    tx: &rusqlite::Transaction<'_>,
    plan: &DistributionPlan,
) -> Result<ColocationId> {
    let planned = &plan.colocation;
    let exists: Option<i32> = tx
        .query_row(
            "SELECT colocationid FROM colocations WHERE colocationid = ?1",
            params![planned.colocation_id.0],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        // A tenant isolated in the group meanwhile split its shards: the planned ones no
        // longer line up with the members'.
        let members = group_ranges(tx, planned.colocation_id)?;
        if !members.is_empty() && members != planned_ranges(&plan.shards) {
            return Err(CatalogError::Conflict {
                table: plan.table_name.clone(),
                change: ConcurrentChange::ShardsReplaced,
            });
        }
        return Ok(planned.colocation_id);
    }
    if plan.group_choice == GroupChoice::Default {
        let wanted = placement_groups(&plan.shards);
        let candidates: Vec<i32> = tx
            .prepare(
                "SELECT colocationid FROM colocations WHERE shardcount = ?1 \
                 AND replicationfactor = ?2 AND distributioncolumntype = ?3 \
                 ORDER BY colocationid",
            )?
            .query_map(
                params![
                    planned.shard_count,
                    planned.replication_factor,
                    planned.distribution_column_type
                ],
                |r| r.get(0),
            )?
            .collect::<std::result::Result<_, _>>()?;
        let ranges = planned_ranges(&plan.shards);
        for candidate in candidates {
            let candidate_id = ColocationId(candidate);
            if group_layout(tx, candidate_id)? == wanted
                && group_ranges(tx, candidate_id)? == ranges
            {
                return Ok(ColocationId(candidate));
            }
        }
    }
    insert_colocation(tx, planned)?;
    Ok(planned.colocation_id)
}

pub(crate) fn insert_colocation(tx: &rusqlite::Transaction<'_>, c: &Colocation) -> Result<()> {
    tx.execute(
        "INSERT INTO colocations (colocationid, shardcount, replicationfactor, \
         distributioncolumntype) VALUES (?1, ?2, ?3, ?4)",
        params![
            c.colocation_id.0,
            c.shard_count,
            c.replication_factor,
            c.distribution_column_type
        ],
    )?;
    Ok(())
}

/// The groups holding each shard (by index) of the planned shards.
fn placement_groups(shards: &[NewShard]) -> Vec<Vec<GroupId>> {
    let mut ordered: Vec<&NewShard> = shards.iter().collect();
    ordered.sort_by_key(|s| s.index);
    ordered
        .into_iter()
        .map(|s| {
            let mut groups: Vec<GroupId> = s.placements.iter().map(|p| p.group_id).collect();
            groups.sort();
            groups
        })
        .collect()
}

/// The hash ranges of the shards of a table in colocation group `id`, if it has a member.
fn member_ranges(snapshot: &CatalogSnapshot, id: ColocationId) -> Option<ShardRanges> {
    snapshot
        .tables
        .values()
        .find(|t| t.kind.colocation_id() == Some(id))
        .and_then(|t| t.shard_ranges())
}

/// The hash ranges of planned shards, by index.
fn planned_ranges(shards: &[NewShard]) -> Vec<Option<(i32, i32)>> {
    let mut ordered: Vec<&NewShard> = shards.iter().collect();
    ordered.sort_by_key(|s| s.index);
    ordered.into_iter().map(|s| s.hash_range).collect()
}

/// The hash ranges of the shards (by index) of a table in colocation group `id`; empty when
/// the group has no member.
fn group_ranges(
    tx: &rusqlite::Transaction<'_>,
    id: ColocationId,
) -> Result<Vec<Option<(i32, i32)>>> {
    let mut stmt = tx.prepare(
        "SELECT minvalue, maxvalue FROM shards \
         WHERE table_id = (SELECT min(table_id) FROM tables WHERE colocationid = ?1) \
         ORDER BY shard_index",
    )?;
    let rows = stmt.query_map(params![id.0], |r| {
        let (min, max): (Option<i32>, Option<i32>) = (r.get(0)?, r.get(1)?);
        Ok(min.zip(max))
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// The groups holding each shard (by index) of a table in colocation group `id`.
fn group_layout(tx: &rusqlite::Transaction<'_>, id: ColocationId) -> Result<Vec<Vec<GroupId>>> {
    let mut stmt = tx.prepare(
        "SELECT s.shard_index, p.groupid FROM shards s JOIN placements p USING (shardid) \
         WHERE s.table_id = (SELECT min(table_id) FROM tables WHERE colocationid = ?1) \
         ORDER BY s.shard_index, p.groupid",
    )?;
    let rows = stmt.query_map(params![id.0], |r| {
        Ok((r.get::<_, i64>(0)? as usize, GroupId(r.get(1)?)))
    })?;
    let mut layout: Vec<Vec<GroupId>> = Vec::new();
    for row in rows {
        let (index, group) = row?;
        if layout.len() <= index {
            layout.resize(index + 1, Vec::new());
        }
        layout[index].push(group);
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use shardfusion_common::ids::GroupId;

    fn schema() -> Schema {
        Schema::new(vec![Field::new("id", DataType::Int64, false)])
    }

    fn by_id(shards: Option<usize>) -> DistributionRequest {
        DistributionRequest::Distributed {
            column: "id".into(),
            shard_count: shards,
            colocate_with: ColocateWith::Default,
        }
    }

    fn catalog_with(tables: &[&str]) -> Result<Catalog> {
        let catalog = Catalog::open_in_memory()?;
        catalog.add_node("localhost", 9001, None)?;
        catalog.add_node("localhost", 9002, None)?;
        for t in tables {
            catalog.create_table(t, &schema())?;
        }
        Ok(catalog)
    }

    fn commit(catalog: &Catalog, plan: &DistributionPlan) -> Result<DistributionCommit> {
        catalog.commit_distribution(plan, &BTreeSet::new(), &[])
    }

    fn file(path: &str) -> FileMeta {
        FileMeta {
            path: path.into(),
            row_count: 10,
            byte_size: 100,
            stats: None,
        }
    }

    fn local_placement(catalog: &Catalog, table: &str) -> Result<PlacementId> {
        let meta = catalog.table(table)?;
        Ok(meta.shards[0].placements[0].placement_id)
    }

    #[test]
    fn a_group_whose_last_table_is_dropped_during_the_move_comes_back() -> Result<()> {
        let catalog = catalog_with(&["a", "b"])?;
        let plan_a = catalog.plan_distribution("a", &by_id(Some(4)))?;
        commit(&catalog, &plan_a)?;
        let plan_b = catalog.plan_distribution("b", &by_id(Some(4)))?;
        catalog.drop_table("a", false)?;
        assert!(catalog.snapshot().colocations.is_empty());
        assert!(matches!(
            commit(&catalog, &plan_b)?,
            DistributionCommit::Committed { .. }
        ));
        let b = catalog.table("b")?;
        let group = b.kind.colocation_id().expect("distributed");
        assert_eq!(Some(group), plan_a.kind.colocation_id());
        assert!(catalog.snapshot().colocations.contains_key(&group));
        Ok(())
    }

    #[test]
    fn tables_planned_together_by_default_share_one_group() -> Result<()> {
        let catalog = catalog_with(&["a", "b"])?;
        let plan_a = catalog.plan_distribution("a", &by_id(Some(4)))?;
        let plan_b = catalog.plan_distribution("b", &by_id(Some(4)))?;
        assert_ne!(
            plan_a.colocation.colocation_id,
            plan_b.colocation.colocation_id
        );
        commit(&catalog, &plan_a)?;
        commit(&catalog, &plan_b)?;
        let snapshot = catalog.snapshot();
        assert_eq!(snapshot.colocations.len(), 1);
        assert_eq!(
            catalog.table("a")?.kind.colocation_id(),
            catalog.table("b")?.kind.colocation_id()
        );
        Ok(())
    }

    #[test]
    fn files_committed_during_the_move_are_moved_before_the_switch() -> Result<()> {
        let catalog = catalog_with(&["t"])?;
        let local = local_placement(&catalog, "t")?;
        catalog.commit_files(
            "t",
            &schema(),
            &[(local, GroupId::COORDINATOR, file("before"))],
        )?;
        let plan = catalog.plan_distribution("t", &by_id(Some(2)))?;
        let moved: BTreeSet<String> = ["before".to_string()].into();
        // An INSERT commits while the rows of "before" move.
        catalog.commit_files(
            "t",
            &schema(),
            &[(local, GroupId::COORDINATOR, file("during"))],
        )?;
        assert!(matches!(
            catalog.commit_distribution(&plan, &moved, &[])?,
            DistributionCommit::FilesArrived
        ));
        assert_eq!(catalog.table("t")?.kind, TableKind::Local);
        let moved: BTreeSet<String> = ["before".to_string(), "during".to_string()].into();
        let DistributionCommit::Committed { garbage } =
            catalog.commit_distribution(&plan, &moved, &[])?
        else {
            panic!("every file was moved");
        };
        assert_eq!(garbage.len(), 2);
        // An INSERT that wrote into the local table before the switch cannot commit after it.
        let late = catalog.commit_files(
            "t",
            &schema(),
            &[(local, GroupId::COORDINATOR, file("late"))],
        );
        assert!(matches!(
            late,
            Err(CatalogError::Conflict {
                change: ConcurrentChange::ShardsReplaced,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn a_truncate_during_the_move_refuses_the_distribution() -> Result<()> {
        let catalog = catalog_with(&["t"])?;
        let local = local_placement(&catalog, "t")?;
        catalog.commit_files(
            "t",
            &schema(),
            &[(local, GroupId::COORDINATOR, file("before"))],
        )?;
        let plan = catalog.plan_distribution("t", &by_id(Some(2)))?;
        catalog.truncate_table("t")?;
        let moved: BTreeSet<String> = ["before".to_string()].into();
        assert!(matches!(
            catalog.commit_distribution(&plan, &moved, &[]),
            Err(CatalogError::Conflict {
                change: ConcurrentChange::RowsRemoved,
                ..
            })
        ));
        assert_eq!(catalog.table("t")?.kind, TableKind::Local);
        Ok(())
    }

    #[test]
    fn a_fenced_table_refuses_new_files_until_the_fence_drops() -> Result<()> {
        let catalog = catalog_with(&["t"])?;
        let local = local_placement(&catalog, "t")?;
        let fence = catalog.fence_writes(catalog.table("t")?.table_id);
        let refused =
            catalog.commit_files("t", &schema(), &[(local, GroupId::COORDINATOR, file("x"))]);
        assert!(matches!(
            refused,
            Err(CatalogError::Conflict {
                change: ConcurrentChange::BeingDistributed,
                ..
            })
        ));
        drop(fence);
        catalog.commit_files("t", &schema(), &[(local, GroupId::COORDINATOR, file("x"))])?;
        Ok(())
    }

    #[test]
    fn rows_without_a_not_null_column_added_meanwhile_are_refused() -> Result<()> {
        let catalog = catalog_with(&["t"])?;
        let local = local_placement(&catalog, "t")?;
        catalog.add_column("t", Field::new("n", DataType::Int64, false))?;
        let refused =
            catalog.commit_files("t", &schema(), &[(local, GroupId::COORDINATOR, file("x"))]);
        assert!(matches!(
            refused,
            Err(CatalogError::Conflict {
                change: ConcurrentChange::ColumnsChanged,
                ..
            })
        ));
        catalog.add_column("t", Field::new("m", DataType::Int64, true))?;
        let both = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
        ]);
        catalog.commit_files("t", &both, &[(local, GroupId::COORDINATOR, file("x"))])?;
        assert!(matches!(
            catalog.add_column("t", Field::new("k", DataType::Int64, false)),
            Err(CatalogError::NotNullOnRows { .. })
        ));
        Ok(())
    }
}
