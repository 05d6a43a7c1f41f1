//! Moving a local table into new shards (`create_distributed_table`,
//! `create_reference_table`), or a distributed or reference table's rows back into one local
//! shard on the coordinator (`undistribute_table`: one copy of each shard is read), while
//! other statements keep writing to it.
//!
//! 1. The catalog plans the new shards: ids reserved, nothing visible yet.
//! 2. Rounds: each round takes the table's committed files from the current snapshot, moves
//!    the rows of the files no earlier round moved into the planned shards (with
//!    [`TableWriter`]), and tries to commit. The commit checks, inside its write transaction,
//!    that the table's files are exactly the moved ones; if INSERTs committed more meanwhile,
//!    the next round moves those.
//! 3. From round [`UNFENCED_ROUNDS`] on, the table is fenced: commits that would add files to
//!    it are refused with the retryable conflict, so that round sees every file and commits.
//!
//! So an INSERT that commits before the switch has its rows moved, one that plans after it
//! writes into the new shards, and one that wrote into the local table but commits after the
//! switch (or while the fence is up) is refused with the retryable conflict (`Aborted`,
//! SQLSTATE 40001): no acknowledged row is lost. A TRUNCATE, DROP or ALTER TABLE that commits
//! during the move refuses the distribution the same way. Whenever the distribution fails,
//! every file it wrote is deleted.
//!
//! Inside a transaction, all of this happens in the transaction's catalog branch
//! ([`crate::session::transaction_branch`]): the moved rows' files wait for its `COMMIT`, and
//! the table's former files are deleted only after it. Rows the transaction itself wrote to
//! the table are first taken into the branch, so they move too.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;
use shardfusion_catalog::layout::{DistributionPlan, DistributionRequest};
use shardfusion_catalog::{
    Catalog, CatalogError, CatalogSnapshot, ConcurrentChange, DistributionCommit, FileMeta,
    TableKind, TableMeta,
};
use shardfusion_common::ids::{GroupId, NodeId};
use shardfusion_common::shard_scan::{ShardFiles, ShardScanExec};

use crate::coordinator::Coordinator;
use crate::error::{Result, SchedulerError};
use crate::session::statement_context::session_for;
use crate::session::table_provider::file_refs;
use crate::session::transaction_branch::{ddl_catalog, keep_written, retire_unless_branched};
use crate::write::table_writer::{TableWriter, WrittenFiles};

/// Catch-up rounds before the table is fenced. Each round moves only what INSERTs committed
/// during the previous one, so rounds get short quickly; the fence bounds them when writes
/// keep arriving.
const UNFENCED_ROUNDS: usize = 3;

/// Moves `table_name`'s rows into the shards `request` asks for and switches its type, as one
/// unit. See the module docs.
pub async fn distribute(
    coordinator: &Coordinator,
    table_name: &str,
    request: &DistributionRequest,
) -> Result<()> {
    let cluster = coordinator.cluster();
    // Rows the transaction wrote to the table move with its committed ones.
    if let Some(transaction) = crate::session::transaction::current() {
        transaction.absorb_writes_into_branch(table_name)?;
    }
    let catalog = ddl_catalog(cluster)?;
    let plan = catalog.plan_distribution(table_name, request)?;
    let mut written = WrittenFiles::empty(Arc::clone(&plan.schema));
    let _committing = cluster.retirement.committing();
    match move_in_rounds(coordinator, &catalog, &plan, &mut written).await {
        Ok(garbage) => {
            keep_written(written);
            retire_unless_branched(cluster, garbage);
            Ok(())
        }
        Err(e) => {
            written.discard(cluster, &catalog.snapshot()).await;
            Err(e)
        }
    }
}

/// The rounds of step 2; returns the table's former files, now garbage.
async fn move_in_rounds(
    coordinator: &Coordinator,
    catalog: &Catalog,
    plan: &DistributionPlan,
    written: &mut WrittenFiles,
) -> Result<Vec<(GroupId, FileMeta)>> {
    let mut moved = BTreeSet::new();
    let mut _fence = None;
    for round in 0..=UNFENCED_ROUNDS {
        if round == UNFENCED_ROUNDS {
            _fence = Some(catalog.fence_writes(plan.table_id));
        }
        let snapshot = catalog.snapshot();
        let table = source_table(&snapshot, plan)?;
        let mut files = Vec::new();
        let mut current = BTreeSet::new();
        // Seen, not read: the other copies of a reference table's (or replicated) shard.
        let mut copies = Vec::new();
        for shard in &table.shards {
            for (copy, placement) in shard.placements.iter().enumerate() {
                for file in file_refs(placement) {
                    current.insert(file.path.clone());
                    if moved.contains(&file.path) {
                        continue;
                    }
                    if copy > 0 {
                        copies.push(file.path.clone());
                        continue;
                    }
                    let node_id = snapshot
                        .node_of_group(placement.group_id)
                        .map_or(NodeId(0), |n| n.node_id);
                    files.push(ShardFiles {
                        shard_id: shard.shard_id,
                        node_id,
                        files: vec![file],
                    });
                }
            }
        }
        if !moved.is_subset(&current) {
            return Err(conflict(plan, ConcurrentChange::RowsRemoved));
        }
        if !files.is_empty() {
            let sources: Vec<String> = files
                .iter()
                .flat_map(|s| s.files.iter().map(|f| f.path.clone()))
                .collect();
            match move_files(coordinator, Arc::clone(&snapshot), &table, plan, files).await {
                Ok(round_files) => written.absorb(round_files),
                // A TRUNCATE or DROP may have deleted the files while they were read.
                Err(e) => return Err(explain_failed_move(catalog, plan, &sources, e)),
            }
            moved.extend(sources);
        }
        moved.extend(copies);
        let files: Vec<_> = written
            .for_commit()
            .into_iter()
            .map(|(p, _, f)| (p, f))
            .collect();
        match catalog.commit_distribution(plan, &moved, &files)? {
            DistributionCommit::Committed { garbage } => {
                crate::limits::commit_point::reached();
                return Ok(garbage);
            }
            DistributionCommit::FilesArrived => continue,
        }
    }
    // The fenced round sees every file, so its commit cannot find new ones.
    Err(conflict(plan, ConcurrentChange::BeingDistributed))
}

/// The table as `snapshot` has it, if it is still the table `plan` moves: local for a
/// distribution, distributed or reference for an undistribution.
fn source_table(snapshot: &CatalogSnapshot, plan: &DistributionPlan) -> Result<Arc<TableMeta>> {
    let table = snapshot
        .table(&plan.table_name)
        .filter(|t| t.table_id == plan.table_id)
        .ok_or_else(|| conflict(plan, ConcurrentChange::Dropped))?;
    let undistributing = plan.kind == TableKind::Local;
    if undistributing && table.kind == TableKind::Local {
        return Err(CatalogError::NotDistributed {
            name: plan.table_name.clone(),
        }
        .into());
    }
    if !undistributing && table.kind != TableKind::Local {
        return Err(CatalogError::AlreadyDistributed {
            name: plan.table_name.clone(),
        }
        .into());
    }
    if table.schema.fields() != plan.schema.fields() {
        return Err(conflict(plan, ConcurrentChange::ColumnsChanged));
    }
    Ok(Arc::clone(table))
}

/// Reads the rows of `files` where they lie (the coordinator's own, or on the workers holding
/// them) and writes them into `plan`'s shards; the files are not committed yet.
pub(crate) async fn move_files(
    coordinator: &Coordinator,
    snapshot: Arc<CatalogSnapshot>,
    table: &TableMeta,
    plan: &DistributionPlan,
    files: Vec<ShardFiles>,
) -> Result<WrittenFiles> {
    let cluster = coordinator.cluster();
    let writer =
        TableWriter::for_distribution(Arc::clone(cluster), Arc::clone(&snapshot), table, plan)?;
    let scan: Arc<dyn ExecutionPlan> = Arc::new(ShardScanExec::try_new(
        table.name.clone(),
        Arc::clone(&table.schema),
        None,
        None,
        None,
        files,
    )?);
    // The planner's own rule sends the scan to the workers holding the files.
    let session = session_for(cluster, snapshot)?;
    let state = session.state();
    let mut plan = scan;
    for rule in state.physical_optimizers() {
        if rule.name() == crate::planner::DistributeRule::NAME {
            plan = rule.optimize(plan, state.config_options())?;
        }
    }
    let rows = datafusion::physical_plan::execute_stream(plan, session.task_ctx())?;
    writer.write_all(rows, Ok).await
}

/// A move that failed because the table lost its files or went away meanwhile is a conflict
/// the user can retry; any other failure stands as it is.
fn explain_failed_move(
    catalog: &Catalog,
    plan: &DistributionPlan,
    sources: &[String],
    error: SchedulerError,
) -> SchedulerError {
    let snapshot = catalog.snapshot();
    let table = match source_table(&snapshot, plan) {
        Ok(table) => table,
        Err(changed) => return changed,
    };
    if still_has(&table, sources) {
        error
    } else {
        conflict(plan, ConcurrentChange::RowsRemoved)
    }
}

/// Whether `table` still lists every file of `sources` (a read of them that failed did not
/// fail because a TRUNCATE or a replacing load took them).
pub(crate) fn still_has(table: &TableMeta, sources: &[String]) -> bool {
    let current: BTreeSet<&str> = table
        .shards
        .iter()
        .flat_map(|s| &s.placements)
        .flat_map(|p| &p.files)
        .map(|f| f.path.as_str())
        .collect();
    sources.iter().all(|p| current.contains(p.as_str()))
}

fn conflict(plan: &DistributionPlan, change: ConcurrentChange) -> SchedulerError {
    CatalogError::Conflict {
        table: plan.table_name.clone(),
        change,
    }
    .into()
}
