//! Reference tables on every worker: a node that joins (`citus_add_node`, a worker that
//! registers) gets a copy of each reference table before it serves, and so does the target
//! of a shard move, as Citus's `replicate_reference_tables()` does.
//!
//! The files of one existing copy are copied worker to worker
//! ([`crate::cluster::shard_copy`]), and one catalog transaction adds the new placements
//! ([`shardfusion_catalog::Catalog::add_placement_copies`]) if the source still has exactly
//! those files; otherwise the files committed meanwhile are copied in another round (from
//! round [`FENCED_FROM_ROUND`] on, with commits into the table waiting). A write that planned
//! before the new copy existed finds, at its commit, that the shard gained a placement and
//! copies its own file there (`TableWriter::follow_placements`).

use std::sync::Arc;
use std::time::SystemTime;

use shardfusion_catalog::{CatalogError, ConcurrentChange, PlacementCopy, TableKind};
use shardfusion_common::ids::{GroupId, PlacementId};

use crate::cluster::shard_copy::CopiedFiles;
use crate::cluster::shard_moves::{FENCED_FROM_ROUND, MoveProgress};
use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};

const MAX_ROUNDS: usize = 6;

/// Copies every reference table that has no placement on node group `to` there. Returns
/// how many tables were copied.
pub async fn copy_reference_tables_to(cluster: &Arc<Cluster>, to: GroupId) -> Result<usize> {
    let _one_at_a_time = cluster.moves.replicating.lock().await;
    let mut copy = CopiedFiles::new(to);
    let mut tracked: Vec<u64> = Vec::new();
    let mut result = Err(SchedulerError::invalid(format!(
        "the reference tables kept changing during {MAX_ROUNDS} copy rounds to node group \
         {to}; try again"
    )));
    for round in 1..=MAX_ROUNDS {
        let attempt = copy_round(cluster, to, round, &mut copy, &mut tracked).await;
        match attempt {
            Ok(Some(copied)) => {
                result = Ok(copied);
                break;
            }
            Ok(None) => continue,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    for slot in tracked {
        cluster.moves.update(slot, |p| match &result {
            Ok(_) => {
                p.progress = 2;
                p.status = "done".into();
            }
            Err(e) => p.status = format!("failed: {e}"),
        });
    }
    match result {
        Ok(copied) => {
            copy.discard_unused(cluster).await;
            Ok(copied)
        }
        Err(e) => {
            copy.discard_all(cluster).await;
            Err(e)
        }
    }
}

/// One round: copies what is missing and tries to commit; `None` when the files changed
/// meanwhile.
async fn copy_round(
    cluster: &Arc<Cluster>,
    to: GroupId,
    round: usize,
    copy: &mut CopiedFiles,
    tracked: &mut Vec<u64>,
) -> Result<Option<usize>> {
    let missing = |snapshot: &shardfusion_catalog::CatalogSnapshot| {
        snapshot
            .tables
            .values()
            .filter(|t| matches!(t.kind, TableKind::Reference { .. }))
            .filter_map(|t| Some((t.name.clone(), t.shards.first()?.clone())))
            .filter(|(_, shard)| !shard.placements.iter().any(|p| p.group_id == to))
            .collect::<Vec<_>>()
    };
    let listed = missing(&cluster.catalog.snapshot());
    if listed.is_empty() {
        return Ok(Some(0));
    }
    let all: Vec<PlacementId> = listed
        .iter()
        .flat_map(|(_, s)| s.placements.iter().map(|p| p.placement_id))
        .collect();
    let _fence = (round >= FENCED_FROM_ROUND).then(|| cluster.catalog.fence_placements(&all));
    let snapshot = cluster.catalog.snapshot();
    let node_of = |group: GroupId| snapshot.node_of_group(group);
    let target = node_of(to).ok_or_else(|| {
        SchedulerError::invalid(format!("node group {to} is not in pg_dist_node"))
    })?;
    let mut switch = Vec::new();
    for (table, shard) in missing(&snapshot) {
        // Copy from a copy on an active worker.
        let Some(source) = shard.placements.iter().find(|p| {
            p.group_id != GroupId::COORDINATOR && node_of(p.group_id).is_some_and(|n| n.is_active)
        }) else {
            return Err(SchedulerError::invalid(format!(
                "reference table {table} has no copy on an active worker to copy from"
            )));
        };
        if round == 1 {
            let from = node_of(source.group_id)
                .map_or((String::new(), 0), |n| (n.node_name.clone(), n.node_port));
            tracked.push(cluster.moves.track(MoveProgress {
                table_name: table.clone(),
                shard_id: shard.shard_id,
                shard_size: source.byte_size(),
                source: from,
                target: (target.node_name.clone(), target.node_port),
                progress: 1,
                bytes_copied: 0,
                operation: "copy",
                status: "running".into(),
                started_at: SystemTime::now(),
            }));
        }
        copy.copy_new(cluster, &snapshot, source.group_id, &source.files)
            .await?;
        switch.push(PlacementCopy {
            placement_id: source.placement_id,
            table,
            from: source.group_id,
            to,
            paths: source.files.iter().map(|f| f.path.clone()).collect(),
        });
    }
    match cluster.catalog.add_placement_copies(&switch) {
        Ok(()) => {
            copy.keep(switch.iter().flat_map(|c| c.paths.iter()));
            Ok(Some(switch.len()))
        }
        Err(CatalogError::Conflict {
            change: ConcurrentChange::FilesChanged | ConcurrentChange::PlacementMoved,
            ..
        }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
