//! Re-sharding distributed tables online (`alter_distributed_table(t, shard_count => n
//! [, cascade_to_colocated => true])`), as one unit for every table that changes.
//!
//! 1. The catalog plans the new shards of each table in one new colocation group
//!    ([`shardfusion_catalog::reshard_store`]); nothing is visible yet. A tenant isolation
//!    (`isolate_tenant_to_new_shard`) plans new shards for one shard group only, and only
//!    that group's rows are rewritten; the rest of each table is untouched.
//! 2. Rounds: each round takes every table's committed files from the current snapshot,
//!    reads the rows of the files no earlier round read (on the workers that hold them, as a
//!    query would) and writes them, hashed by the distribution column, into the new shards
//!    ([`TableWriter`]); then it tries to commit all tables at once. If INSERTs committed
//!    more files meanwhile, the next round rewrites those.
//! 3. From round [`UNFENCED_ROUNDS`] on, the tables are fenced (for a split, only the
//!    replaced shards' placements): commits that would add files there are refused with the
//!    retryable conflict, so that round sees every file and commits.
//!
//! Queries keep running throughout: one planned before the switch reads the old shards,
//! whose files are deleted only after it ends. A write that planned against the old shards
//! and commits after the switch is refused with the retryable conflict (`Aborted`, SQLSTATE
//! 40001), as during `create_distributed_table`; none is lost. If the re-shard fails, every
//! file it wrote is deleted and the tables keep their shards.

use std::collections::BTreeSet;
use std::sync::Arc;

use shardfusion_catalog::layout::DistributionPlan;
use shardfusion_catalog::reshard_store::ReshardPlan;
use shardfusion_catalog::{
    CatalogError, CatalogSnapshot, ConcurrentChange, DistributionCommit, FileMeta, TableMeta,
};
use shardfusion_common::ids::{GroupId, PlacementId, ShardId};
use shardfusion_common::shard_scan::ShardFiles;

use crate::coordinator::Coordinator;
use crate::error::{Result, SchedulerError};
use crate::session::table_provider::file_refs;
use crate::write::distribution::still_has;
use crate::write::table_writer::WrittenFiles;

/// Catch-up rounds before the tables are fenced (as for a distribution).
const UNFENCED_ROUNDS: usize = 3;

/// Gives `table` (and, with `cascade`, every table co-located with it) `shard_count` shards;
/// returns the names of the tables re-sharded. See the module docs.
pub async fn reshard(
    coordinator: &Coordinator,
    table: &str,
    shard_count: usize,
    cascade: bool,
) -> Result<Vec<String>> {
    let cluster = coordinator.cluster();
    let plan = cluster.catalog.plan_reshard(table, shard_count, cascade)?;
    carry_out(coordinator, &plan).await?;
    Ok(plan.tables.iter().map(|t| t.table_name.clone()).collect())
}

/// Rewrites the rows of the shards `plan` replaces into its new shards and switches the
/// tables over (steps 2 and 3); on failure deletes what it wrote.
pub(crate) async fn carry_out(coordinator: &Coordinator, plan: &ReshardPlan) -> Result<()> {
    let cluster = coordinator.cluster();
    let mut written: Vec<WrittenFiles> = plan
        .tables
        .iter()
        .map(|t| WrittenFiles::empty(Arc::clone(&t.schema)))
        .collect();
    let _committing = cluster.retirement.committing();
    match rewrite_in_rounds(coordinator, plan, &mut written).await {
        Ok(garbage) => {
            for files in written {
                files.committed();
            }
            cluster.retire_files(garbage);
            Ok(())
        }
        Err(e) => {
            let snapshot = cluster.catalog.snapshot();
            for files in written {
                files.discard(cluster, &snapshot).await;
            }
            Err(e)
        }
    }
}

/// The rounds of step 2; returns the tables' former files, now garbage.
async fn rewrite_in_rounds(
    coordinator: &Coordinator,
    plan: &ReshardPlan,
    written: &mut [WrittenFiles],
) -> Result<Vec<(GroupId, FileMeta)>> {
    let catalog = &coordinator.cluster().catalog;
    let mut moved: Vec<BTreeSet<String>> = vec![BTreeSet::new(); plan.tables.len()];
    let (mut _tables_fenced, mut _shards_fenced) = (Vec::new(), None);
    for round in 0..=UNFENCED_ROUNDS {
        if round == UNFENCED_ROUNDS {
            match &plan.split {
                // A re-shard: the whole tables.
                None => {
                    _tables_fenced = plan
                        .tables
                        .iter()
                        .map(|t| catalog.fence_writes(t.table_id))
                        .collect();
                }
                // A split: only the replaced shards' placements; the rest of the tables takes
                // writes throughout.
                Some(split) => {
                    let placements = placements_of(&catalog.snapshot(), &split.sources);
                    _shards_fenced = Some(catalog.fence_placements(&placements));
                }
            }
        }
        let snapshot = catalog.snapshot();
        for (i, target) in plan.tables.iter().enumerate() {
            let table = current_table(&snapshot, target)?;
            let replaced = |shard| plan.replaces(i, shard);
            let (shards, current) = unread_files(&snapshot, &table, &moved[i], replaced)?;
            if !moved[i].is_subset(&current) {
                return Err(conflict(target, ConcurrentChange::RowsRemoved));
            }
            if shards.is_empty() {
                continue;
            }
            let sources: Vec<String> = shards
                .iter()
                .flat_map(|s| s.files.iter().map(|f| f.path.clone()))
                .collect();
            let rows = crate::write::distribution::move_files(
                coordinator,
                Arc::clone(&snapshot),
                &table,
                target,
                shards,
            );
            match rows.await {
                Ok(files) => written[i].absorb(files),
                // A TRUNCATE or DROP may have taken the files while they were read.
                Err(e) => {
                    let latest = catalog.snapshot();
                    return Err(match current_table(&latest, target) {
                        Err(changed) => changed,
                        Ok(now) if still_has(&now, &sources) => e,
                        Ok(_) => conflict(target, ConcurrentChange::RowsRemoved),
                    });
                }
            }
            moved[i].extend(sources);
        }
        let files: Vec<Vec<_>> = written
            .iter()
            .map(|w| w.for_commit().into_iter().map(|(p, _, f)| (p, f)).collect())
            .collect();
        match catalog.commit_reshard(plan, &moved, &files)? {
            DistributionCommit::Committed { garbage } => {
                crate::limits::commit_point::reached();
                return Ok(garbage);
            }
            DistributionCommit::FilesArrived => continue,
        }
    }
    // The fenced round sees every file, so its commit cannot find new ones.
    let first = plan.tables.first().map_or("", |t| t.table_name.as_str());
    Err(CatalogError::Conflict {
        table: first.to_string(),
        change: ConcurrentChange::BeingDistributed,
    }
    .into())
}

/// The placements of `shards`.
fn placements_of(snapshot: &CatalogSnapshot, shards: &[ShardId]) -> Vec<PlacementId> {
    snapshot
        .tables
        .values()
        .flat_map(|t| &t.shards)
        .filter(|s| shards.contains(&s.shard_id))
        .flat_map(|s| s.placements.iter().map(|p| p.placement_id))
        .collect()
}

/// The table as `snapshot` has it, if it is still the one `target` re-shards.
fn current_table(snapshot: &CatalogSnapshot, target: &DistributionPlan) -> Result<Arc<TableMeta>> {
    snapshot
        .table(&target.table_name)
        .filter(|t| t.table_id == target.table_id)
        .cloned()
        .ok_or_else(|| conflict(target, ConcurrentChange::Dropped))
}

/// The files of the `replaced` shards of `table` not in `read` yet, by shard (one placement
/// each, on an active node), and the paths of all their files.
fn unread_files(
    snapshot: &CatalogSnapshot,
    table: &TableMeta,
    read: &BTreeSet<String>,
    replaced: impl Fn(ShardId) -> bool,
) -> Result<(Vec<ShardFiles>, BTreeSet<String>)> {
    let mut shards = Vec::new();
    let mut current = BTreeSet::new();
    for shard in table.shards.iter().filter(|s| replaced(s.shard_id)) {
        let readable = shard.placements.iter().find_map(|p| {
            snapshot
                .node_of_group(p.group_id)
                .filter(|n| n.is_active)
                .map(|n| (p, n.node_id))
        });
        let Some((placement, node_id)) = readable else {
            if shard.placements.iter().all(|p| p.files.is_empty()) {
                continue;
            }
            return Err(SchedulerError::cluster_state(format!(
                "shard {} of {} has no placement on an active node to read its rows from",
                shard.shard_id, table.name
            )));
        };
        let mut files = Vec::new();
        for file in file_refs(placement) {
            current.insert(file.path.clone());
            if !read.contains(&file.path) {
                files.push(file);
            }
        }
        if !files.is_empty() {
            shards.push(ShardFiles {
                shard_id: shard.shard_id,
                node_id,
                files,
            });
        }
    }
    Ok((shards, current))
}

fn conflict(target: &DistributionPlan, change: ConcurrentChange) -> SchedulerError {
    CatalogError::Conflict {
        table: target.table_name.clone(),
        change,
    }
    .into()
}
