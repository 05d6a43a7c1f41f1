//! Shard moves: a shard group (one shard index of a colocation group: the shard of every
//! co-located table) moved from one node to another while queries and writes go on, as
//! Citus's `citus_move_shard_placement` does.
//!
//! 1. Reference tables are copied to the target first, so joins there find them.
//! 2. Each placement's committed files are copied **worker to worker**
//!    ([`crate::cluster::shard_copy`]): the target pulls them from the source and verifies
//!    checksums, sizes and row counts; the coordinator relays no bytes. Before a file is
//!    copied it is recorded in `pg_dist_cleanup` (deleted on failure) and registered as in
//!    flight, so a move cut short by a crash leaves nothing behind for long.
//! 3. One catalog transaction switches every placement of the group to the target
//!    ([`shardfusion_catalog::Catalog::move_placements`]), provided each still has exactly the
//!    files copied. Writes keep committing to the source meanwhile, so the copy runs in
//!    rounds: each round copies the files committed since the previous one. From round
//!    [`FENCED_FROM_ROUND`] on, commits into the group's placements wait for the switch
//!    (the fence), so that round is sure to succeed. A write that committed on the source
//!    after its files were listed is caught by the switch's check; a write still running
//!    when the switch happens finds its placement moved at commit and copies its own files
//!    to the target (`TableWriter::follow_placements`). Nothing is lost or counted twice.
//! 4. The source files are deleted only once every statement that started before the switch
//!    has finished ([`crate::cluster::file_retirement`]): a query planned on the old
//!    placement keeps reading it.
//!
//! A move that fails (a worker dies, a copy does not verify, a concurrent DROP) leaves the
//! old placement serving and deletes what it copied; it can simply be run again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use shardfusion_catalog::{
    CatalogError, CatalogSnapshot, ConcurrentChange, FileMeta, MovedFiles, PlacementCopy,
    ShardMeta, TableKind,
};
use shardfusion_common::ids::{ColocationId, GroupId, PlacementId, ShardId};

use crate::cluster::shard_copy::CopiedFiles;
use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};

/// Copy rounds before the switch gives up (writes kept changing the files every time).
const MAX_ROUNDS: usize = 6;
/// From this round on, commits into the moving placements wait for the switch.
pub const FENCED_FROM_ROUND: usize = 3;

/// One shard group: the shards of a colocation group's tables that cover one hash range.
/// It is named by that range, not by its position in the tables' shard lists: a tenant
/// isolation splitting another shard group shifts positions, never another group's range,
/// and a group it split no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardGroup {
    pub colocation_id: ColocationId,
    pub range: (i32, i32),
}

impl ShardGroup {
    /// The shard group of `shard`, a shard of a distributed table in group `colocation_id`.
    pub fn of(colocation_id: ColocationId, shard: &ShardMeta) -> Option<Self> {
        Some(Self {
            colocation_id,
            range: shard.hash_range?,
        })
    }

    /// Whether `shard` (of a table in this colocation group) belongs to the group.
    pub fn holds(&self, shard: &ShardMeta) -> bool {
        shard.hash_range == Some(self.range)
    }
}

impl std::fmt::Display for ShardGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the shard group of hash range [{}, {}] in colocation group {}",
            self.range.0, self.range.1, self.colocation_id
        )
    }
}

/// How far one move is, for `get_rebalance_progress()` and `citus_shards`.
#[derive(Debug, Clone)]
pub struct MoveProgress {
    pub table_name: String,
    pub shard_id: ShardId,
    /// Bytes of the shard group's placements when the move started.
    pub shard_size: u64,
    pub source: (String, u16),
    pub target: (String, u16),
    /// Citus's `progress`: 0 not started, 1 moving, 2 done.
    pub progress: i32,
    pub bytes_copied: u64,
    /// `move`, or `copy` for a reference table's new copy.
    pub operation: &'static str,
    /// `running`, `done`, or the error that stopped it.
    pub status: String,
    pub started_at: SystemTime,
}

/// The moves of this coordinator: which shard groups are moving now, and the progress of
/// the moves started since the last rebalance began.
#[derive(Debug, Default)]
pub struct ShardMoves {
    moving: Mutex<BTreeSet<ShardGroup>>,
    /// Each move's progress under the id [`ShardMoves::track`] gave it, oldest first.
    progress: Mutex<Vec<(u64, MoveProgress)>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Copying reference tables to new nodes: one at a time.
    pub(crate) replicating: tokio::sync::Mutex<()>,
    /// The rebalancer's background job (`citus_rebalance_start`).
    pub job: crate::cluster::rebalance_job::RebalanceJobs,
}

impl ShardMoves {
    /// Every move's progress, oldest first.
    pub fn progress(&self) -> Vec<MoveProgress> {
        self.progress
            .lock()
            .iter()
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Forgets finished moves' progress (a new rebalance starts).
    pub fn clear_finished(&self) {
        self.progress.lock().retain(|(_, p)| p.progress != 2);
    }

    /// Lists a move; returns the id its progress is updated by.
    pub(crate) fn track(&self, entry: MoveProgress) -> u64 {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.progress.lock().push((id, entry));
        id
    }

    pub(crate) fn update(&self, id: u64, change: impl FnOnce(&mut MoveProgress)) {
        let mut progress = self.progress.lock();
        if let Some((_, entry)) = progress.iter_mut().find(|(i, _)| *i == id) {
            change(entry);
        }
    }
}

/// Marks a shard group as moving until dropped.
struct Moving<'a> {
    moves: &'a ShardMoves,
    group: ShardGroup,
}

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        self.moves.moving.lock().remove(&self.group);
    }
}

/// The shard group of `shard` in `snapshot`.
pub fn shard_group_of(snapshot: &CatalogSnapshot, shard: ShardId) -> Result<ShardGroup> {
    for table in snapshot.tables.values() {
        if let Some(s) = table.shards.iter().find(|s| s.shard_id == shard) {
            let Some(colocation_id) = table.kind.colocation_id() else {
                break;
            };
            if matches!(table.kind, TableKind::Reference { .. }) {
                return Err(SchedulerError::invalid(format!(
                    "shard {shard} belongs to the reference table {}, which has a copy on every \
                     node: it is not moved",
                    table.name
                )));
            }
            return ShardGroup::of(colocation_id, s).ok_or_else(|| {
                SchedulerError::cluster_state(format!("shard {shard} has no hash range"))
            });
        }
    }
    Err(SchedulerError::unknown(format!(
        "shard {shard} does not exist (see pg_dist_shard)"
    )))
}

/// The placements of `group` on node group `from`: (table, placement, files).
fn placements_on(
    snapshot: &CatalogSnapshot,
    group: ShardGroup,
    from: GroupId,
    to: GroupId,
) -> Result<Vec<(String, PlacementId, Vec<FileMeta>)>> {
    let mut found = Vec::new();
    for table in snapshot.tables.values() {
        if table.kind.colocation_id() != Some(group.colocation_id)
            || matches!(table.kind, TableKind::Reference { .. })
        {
            continue;
        }
        let Some(shard) = table.shards.iter().find(|s| group.holds(s)) else {
            continue;
        };
        if shard.placements.iter().any(|p| p.group_id == to) {
            return Err(SchedulerError::Catalog(CatalogError::PlacementExists {
                shard: shard.shard_id,
                group: to,
            }));
        }
        let Some(placement) = shard.placements.iter().find(|p| p.group_id == from) else {
            return Err(SchedulerError::invalid(format!(
                "shard {} of {} has no placement on node group {from}",
                shard.shard_id, table.name
            )));
        };
        found.push((
            table.name.clone(),
            placement.placement_id,
            placement.files.clone(),
        ));
    }
    if found.is_empty() {
        return Err(SchedulerError::invalid(format!(
            "{group} no longer exists (a tenant isolation or re-shard replaced its shards)"
        )));
    }
    Ok(found)
}

/// Moves shard group `group` from node group `from` to `to` (see the module docs); returns the bytes copied.
pub async fn move_shard_group(
    cluster: &Arc<Cluster>,
    group: ShardGroup,
    from: GroupId,
    to: GroupId,
) -> Result<u64> {
    let snapshot = cluster.catalog.snapshot();
    let node = |g: GroupId| {
        snapshot
            .node_of_group(g)
            .filter(|n| g != GroupId::COORDINATOR && n.group_id == g)
            .ok_or_else(|| SchedulerError::invalid(format!("node group {g} is not a worker")))
    };
    let (source, target) = (node(from)?, node(to)?);
    if from == to {
        return Err(SchedulerError::invalid(
            "the source and target node of a shard move must differ",
        ));
    }
    if !target.is_active {
        return Err(SchedulerError::cluster_state(format!(
            "cannot move shards to {}:{}: the node is disabled (citus_activate_node first)",
            target.node_name, target.node_port
        )));
    }
    let first = placements_on(&snapshot, group, from, to)?;
    {
        let mut moving = cluster.moves.moving.lock();
        if !moving.insert(group) {
            return Err(SchedulerError::cluster_state(format!(
                "{group} is already being moved"
            )));
        }
    }
    let _moving = Moving {
        moves: &cluster.moves,
        group,
    };
    crate::cluster::reference_copies::copy_reference_tables_to(cluster, to).await?;
    let shard_id = snapshot
        .tables
        .get(&first[0].0)
        .and_then(|t| t.shards.iter().find(|s| group.holds(s)))
        .map_or(ShardId(0), |s| s.shard_id);
    let slot = cluster.moves.track(MoveProgress {
        table_name: first[0].0.clone(),
        shard_id,
        shard_size: first
            .iter()
            .flat_map(|(_, _, files)| files)
            .map(|f| f.byte_size)
            .sum(),
        source: (source.node_name.clone(), source.node_port),
        target: (target.node_name.clone(), target.node_port),
        progress: 1,
        bytes_copied: 0,
        operation: "move",
        status: "running".into(),
        started_at: SystemTime::now(),
    });
    let mut copy = CopiedFiles::new(to);
    let result = switch_in_rounds(cluster, group, from, to, &mut copy, slot).await;
    cluster.moves.update(slot, |p| {
        p.bytes_copied = copy.bytes();
        match &result {
            Ok(_) => {
                p.progress = 2;
                p.status = "done".into();
            }
            Err(e) => p.status = format!("failed: {e}"),
        }
    });
    match result {
        Ok(()) => {
            // Copies of files that left the placement during the move are nobody's.
            let bytes_copied = copy.bytes();
            copy.discard_unused(cluster).await;
            Ok(bytes_copied)
        }
        Err(e) => {
            copy.discard_all(cluster).await;
            Err(e)
        }
    }
}

/// Steps 2 and 3 of the module docs.
async fn switch_in_rounds(
    cluster: &Arc<Cluster>,
    group: ShardGroup,
    from: GroupId,
    to: GroupId,
    copy: &mut CopiedFiles,
    slot: u64,
) -> Result<()> {
    for round in 1..=MAX_ROUNDS {
        let listed = placements_on(&cluster.catalog.snapshot(), group, from, to)?;
        let ids: Vec<PlacementId> = listed.iter().map(|(_, p, _)| *p).collect();
        // The fence is up before the files are listed again, so every commit before it is
        // in that listing and none comes after.
        let _fence = (round >= FENCED_FROM_ROUND).then(|| cluster.catalog.fence_placements(&ids));
        let snapshot = cluster.catalog.snapshot();
        let listed = if round >= FENCED_FROM_ROUND {
            placements_on(&snapshot, group, from, to)?
        } else {
            listed
        };
        let files: Vec<FileMeta> = listed
            .iter()
            .flat_map(|(_, _, files)| files.iter().cloned())
            .collect();
        copy.copy_new(cluster, &snapshot, from, &files).await?;
        let bytes = copy.bytes();
        cluster.moves.update(slot, |p| p.bytes_copied = bytes);
        let switch: Vec<PlacementCopy> = listed
            .iter()
            .map(|(table, placement, files)| PlacementCopy {
                placement_id: *placement,
                table: table.clone(),
                from,
                to,
                paths: files.iter().map(|f| f.path.clone()).collect(),
            })
            .collect();
        let _committing = cluster.retirement.committing();
        let moved = if cluster.shared_storage() {
            MovedFiles::Shared
        } else {
            MovedFiles::Copied
        };
        match cluster.catalog.move_placements(&switch, moved) {
            Ok(garbage) => {
                copy.keep(switch.iter().flat_map(|c| c.paths.iter()));
                cluster.retire_files(garbage);
                return Ok(());
            }
            Err(CatalogError::Conflict {
                change: ConcurrentChange::FilesChanged,
                ..
            }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // Nothing was moved: a retryable conflict (40001), as for a statement that lost a race.
    tracing::warn!("{group} kept changing during {MAX_ROUNDS} copy rounds");
    Err(SchedulerError::Catalog(CatalogError::Conflict {
        table: group.to_string(),
        change: ConcurrentChange::FilesChanged,
    }))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use shardfusion_catalog::Catalog;
    use shardfusion_catalog::layout::{ColocateWith, DistributionRequest};

    use super::*;

    /// A move planned before a tenant isolation split another shard group (shifting the
    /// positions of the later ones) still moves the shard it named, and one of a group the
    /// split replaced moves nothing.
    #[test]
    fn a_shard_group_is_found_by_its_range_after_a_split() -> Result<()> {
        let catalog = Catalog::open_in_memory()?;
        catalog.add_node("h", 1, None)?;
        catalog.add_node("h", 2, None)?;
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        catalog.create_table("t", &schema)?;
        let request = DistributionRequest::Distributed {
            column: "id".into(),
            shard_count: Some(4),
            colocate_with: ColocateWith::Default,
        };
        let plan = catalog.plan_distribution("t", &request)?;
        catalog.commit_distribution(&plan, &Default::default(), &[])?;
        let before = catalog.snapshot();
        let shards = &before.table("t").expect("t").shards;
        let (first, last) = (shards[0].clone(), shards[3].clone());
        let moving = shard_group_of(&before, last.shard_id)?;
        let replaced = shard_group_of(&before, first.shard_id)?;

        // A tenant in shard 0 is isolated: shard 0 becomes three, shard 3 is now at index 5.
        let split = catalog.plan_isolation("t", i32::MIN + 5)?;
        catalog.commit_reshard(&split, &[Default::default()], &[vec![]])?;
        let after = catalog.snapshot();
        assert_eq!(
            after.table("t").expect("t").shards[5].shard_id,
            last.shard_id
        );

        let from = last.placements[0].group_id;
        let to = GroupId(3 - from.0);
        let found = placements_on(&after, moving, from, to)?;
        let ids: Vec<PlacementId> = found.iter().map(|(_, p, _)| *p).collect();
        assert_eq!(ids, vec![last.placements[0].placement_id]);
        let from = first.placements[0].group_id;
        assert!(placements_on(&after, replaced, from, GroupId(3 - from.0)).is_err());
        Ok(())
    }
}
