//! Isolating a tenant in the catalog (`isolate_tenant_to_new_shard(t, value)`), as Citus
//! does: the shard whose hash range holds the value's hash is split into up to three shards,
//! the range below the hash, the hash alone (the tenant's shard), and the range above it. Every
//! table of the colocation group splits the same way, so the group stays co-located; the new
//! shards stay on the nodes of the shard they replace (move them afterwards as any other).
//!
//! [`Catalog::plan_isolation`] reserves the new shards as a [`ReshardPlan`] with a
//! [`ShardSplit`]: the rows of the replaced shards are rewritten, and
//! [`Catalog::commit_reshard`] switches every table of the group in one transaction.

use std::sync::Arc;

use rusqlite::TransactionBehavior;
use shardfusion_common::ids::GroupId;

use crate::error::CatalogError;
use crate::layout::{DistributionPlan, GroupChoice};
use crate::reshard_store::{ReshardPlan, ShardSplit, distributed_table};
use crate::store::{Catalog, reserve_shards};

type Result<T> = std::result::Result<T, CatalogError>;

/// The ranges a shard covering `range` splits into to isolate `hash`: the part below it (if
/// any), `hash` alone, and the part above it (if any).
pub fn isolation_ranges(range: (i32, i32), hash: i32) -> Vec<(i32, i32)> {
    let (min, max) = range;
    let mut ranges = Vec::with_capacity(3);
    if min < hash {
        ranges.push((min, hash - 1));
    }
    ranges.push((hash, hash));
    if hash < max {
        ranges.push((hash + 1, max));
    }
    ranges
}

impl Catalog {
    /// Plans the split that gives the tenant whose distribution value hashes to `hash` a
    /// shard of its own in `table` and every table co-located with it (see the module docs).
    /// Nothing is visible until [`Catalog::commit_reshard`].
    pub fn plan_isolation(&self, table: &str, hash: i32) -> Result<ReshardPlan> {
        let snapshot = self.snapshot();
        let (meta, colocation) = distributed_table(&snapshot, table)?;
        let colocation_id = &colocation.colocation_id;
        let (index, range) = meta
            .shard_of_hash(hash)
            .and_then(|s| Some((s.index, s.hash_range?)))
            .ok_or_else(|| CatalogError::Inconsistent {
                what: format!("no shard of {table} covers hash {hash}"),
            })?;
        if range == (hash, hash) {
            return Err(CatalogError::AlreadyIsolated {
                table: table.to_string(),
                shard_id: meta.shards[index].shard_id,
            });
        }
        let ranges = isolation_ranges(range, hash);
        let mut members: Vec<_> = snapshot
            .tables
            .values()
            .filter(|t| t.kind.colocation_id() == Some(*colocation_id))
            .cloned()
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let mut sources = Vec::with_capacity(members.len());
        let mut groups: Vec<Vec<GroupId>> = Vec::with_capacity(members.len());
        for member in &members {
            // Co-located tables have equal ranges, index by index.
            let shard = member
                .shards
                .get(index)
                .filter(|s| s.hash_range == Some(range))
                .ok_or_else(|| CatalogError::Inconsistent {
                    what: format!(
                        "{} is co-located with {table} but its shard {index} does not cover \
                         hash range {range:?}",
                        member.name
                    ),
                })?;
            sources.push(shard.shard_id);
            groups.push(shard.placements.iter().map(|p| p.group_id).collect());
        }
        let mut grown = colocation.clone();
        grown.shard_count += ranges.len() as i32 - 1;
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut tables = Vec::with_capacity(members.len());
        let split_ranges: Vec<Option<(i32, i32)>> = ranges.iter().copied().map(Some).collect();
        for (member, groups) in members.iter().zip(&groups) {
            let mut shards =
                reserve_shards(&tx, &vec![groups.clone(); ranges.len()], &split_ranges)?;
            for shard in &mut shards {
                shard.index += index;
            }
            tables.push(DistributionPlan {
                table_id: member.table_id,
                table_name: member.name.clone(),
                schema: Arc::clone(&member.schema),
                kind: member.kind.clone(),
                colocation: grown.clone(),
                group_choice: GroupChoice::Default,
                shards,
            });
        }
        tx.commit()?;
        Ok(ReshardPlan {
            tables,
            old_colocation: *colocation_id,
            whole_group: true,
            split: Some(ShardSplit { sources }),
        })
    }
}

#[cfg(test)]
mod tests {
    use shardfusion_common::hashing::shard_range;
    use shardfusion_common::ids::PlacementId;

    use super::*;
    use crate::distribution_store::DistributionCommit;
    use crate::error::ConcurrentChange;
    use crate::layout::{ColocateWith, DistributionRequest};
    use crate::model::FileMeta;
    use crate::test_support::{add_file, distributed, file, id_schema, paths};

    /// Tables `a` and `b`, co-located in 2 shards over 2 nodes, one file in each shard.
    fn catalog() -> Result<Catalog> {
        let catalog = distributed(&["a", "b"])?;
        for name in ["a", "b"] {
            add_file(&catalog, name, 0, &format!("{name}0"))?;
            add_file(&catalog, name, 1, &format!("{name}1"))?;
        }
        Ok(catalog)
    }

    #[test]
    fn a_split_replaces_one_shard_group_and_keeps_the_rest() -> Result<()> {
        let catalog = catalog()?;
        let before = catalog.table("a")?;
        let (lo, hi) = shard_range(0, 2);
        let hash = -5;
        let plan = catalog.plan_isolation("a", hash)?;
        assert_eq!(plan.tables.len(), 2, "the whole colocation group splits");
        let expected = vec![(lo, hash - 1), (hash, hash), (hash + 1, hi)];
        for table in &plan.tables {
            let ranges: Vec<_> = table.shards.iter().filter_map(|s| s.hash_range).collect();
            assert_eq!(ranges, expected);
        }
        // A file committed meanwhile into the shard that stays does not hold the split up.
        add_file(&catalog, "a", 1, "a1-late")?;
        let written: Vec<Vec<(PlacementId, FileMeta)>> = plan
            .tables
            .iter()
            .map(|t| vec![(t.shards[1].placements[0].placement_id, file("tenant"))])
            .collect();
        let moved = vec![paths(&["a0"]), paths(&["b0"])];
        let DistributionCommit::Committed { garbage } =
            catalog.commit_reshard(&plan, &moved, &written)?
        else {
            panic!("committed");
        };
        assert_eq!(garbage.len(), 2, "only the split shards' files are garbage");
        let snapshot = catalog.snapshot();
        for name in ["a", "b"] {
            let table = snapshot.table(name).expect("table");
            let ranges: Vec<_> = table.shards.iter().filter_map(|s| s.hash_range).collect();
            assert_eq!(ranges, [expected.clone(), vec![shard_range(1, 2)]].concat());
            let indexes: Vec<_> = table.shards.iter().map(|s| s.index).collect();
            assert_eq!(indexes, vec![0, 1, 2, 3]);
            assert_eq!(table.shard_of_hash(hash).map(|s| s.index), Some(1));
            assert_eq!(table.shards[1].placements[0].files[0].path, "tenant");
        }
        let a = snapshot.table("a").expect("a");
        assert_eq!(a.shards[3].shard_id, before.shards[1].shard_id);
        assert_eq!(a.shards[3].placements[0].files.len(), 2);
        let group = a.kind.colocation_id().expect("distributed");
        assert_eq!(group, before.kind.colocation_id().expect("distributed"));
        assert_eq!(snapshot.colocations[&group].shard_count, 4);
        assert!(matches!(
            catalog.plan_isolation("b", hash),
            Err(CatalogError::AlreadyIsolated { .. })
        ));
        Ok(())
    }

    #[test]
    fn new_rows_in_the_split_shard_are_rewritten_first() -> Result<()> {
        let catalog = catalog()?;
        let plan = catalog.plan_isolation("a", 7)?;
        add_file(&catalog, "b", 1, "b1-late")?;
        let index = catalog.table("b")?.shard_of_hash(7).map(|s| s.index);
        add_file(
            &catalog,
            "b",
            index.expect("a shard holds every hash"),
            "b-late",
        )?;
        let moved = vec![paths(&["a1"]), paths(&["b1"])];
        let none = vec![vec![], vec![]];
        assert!(matches!(
            catalog.commit_reshard(&plan, &moved, &none)?,
            DistributionCommit::FilesArrived
        ));
        // Another isolation in the same shard group won the race: this one refuses.
        let other = catalog.plan_isolation("a", 9)?;
        let moved_other = vec![paths(&["a1"]), paths(&["b1", "b1-late", "b-late"])];
        catalog.commit_reshard(&other, &moved_other, &none)?;
        let moved = vec![paths(&["a1"]), paths(&["b1", "b1-late", "b-late"])];
        assert!(matches!(
            catalog.commit_reshard(&plan, &moved, &none),
            Err(CatalogError::Conflict {
                change: ConcurrentChange::ShardsReplaced,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn a_split_refuses_if_its_shard_group_moved_meanwhile() -> Result<()> {
        let catalog = catalog()?;
        let plan = catalog.plan_isolation("a", 7)?;
        let sources = plan
            .split
            .as_ref()
            .map(|s| s.sources.clone())
            .unwrap_or_default();
        // The group's placements switch nodes, as a move's commit does.
        catalog.write(|tx| {
            for shard in &sources {
                tx.execute(
                    "UPDATE placements SET groupid = 3 - groupid WHERE shardid = ?1",
                    rusqlite::params![shard.0],
                )?;
            }
            Ok(())
        })?;
        let moved = vec![paths(&["a1"]), paths(&["b1"])];
        assert!(matches!(
            catalog.commit_reshard(&plan, &moved, &[vec![], vec![]]),
            Err(CatalogError::Conflict {
                change: ConcurrentChange::PlacementMoved,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn a_table_joining_a_split_group_takes_its_ranges() -> Result<()> {
        let catalog = catalog()?;
        let plan = catalog.plan_isolation("a", 7)?;
        let moved = vec![paths(&["a1"]), paths(&["b1"])];
        catalog.commit_reshard(&plan, &moved, &[vec![], vec![]])?;
        let a = catalog.table("a")?;
        catalog.create_table("c", &id_schema())?;
        let request = DistributionRequest::Distributed {
            column: "id".into(),
            shard_count: None,
            colocate_with: ColocateWith::Table("a".into()),
        };
        let plan = catalog.plan_distribution("c", &request)?;
        catalog.commit_distribution(&plan, &Default::default(), &[])?;
        let c = catalog.table("c")?;
        assert_eq!(c.kind.colocation_id(), a.kind.colocation_id());
        assert_eq!(c.shard_ranges(), a.shard_ranges());
        // Default co-location never picks the uneven group, even with its shard count.
        catalog.create_table("d", &id_schema())?;
        let request = DistributionRequest::Distributed {
            column: "id".into(),
            shard_count: Some(a.shards.len()),
            colocate_with: ColocateWith::Default,
        };
        let plan = catalog.plan_distribution("d", &request)?;
        catalog.commit_distribution(&plan, &Default::default(), &[])?;
        let d = catalog.table("d")?;
        assert_ne!(d.kind.colocation_id(), a.kind.colocation_id());
        assert!(d.shard_ranges().is_some_and(|r| r.is_even()));
        Ok(())
    }
}
