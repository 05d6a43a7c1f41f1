//! Collecting shard files nothing refers to: owed deletions and orphan reconciliation.
//!
//! Files become garbage in three ways, and each has its collector:
//! - a committed change (DROP, TRUNCATE, a replacing ingest, a distribution move) drops files
//!   from the catalog: the catalog records them in `pg_dist_cleanup` in the same transaction,
//!   [`delete_garbage`] deletes them right away and removes the records the nodes confirm;
//!   whatever a node could not confirm is retried by [`run`] every `retry_interval`, and at
//!   once when the node registers again;
//! - a failed or cancelled statement deletes what it wrote ([`crate::write::table_writer`]); a deletion
//!   that fails is recorded in `pg_dist_cleanup` as well;
//! - a crash (of a worker mid-write, or of the coordinator between a write and its commit)
//!   leaves files no one knows about: [`reconcile`] lists a node's shard files and deletes
//!   those that the catalog does not list, that no statement is writing
//!   ([`InFlightWrites`]), and that are older than the grace period. It runs for a worker when
//!   it registers, for every node each `reconcile_interval`, and on demand through
//!   `citus_cleanup_orphaned_resources()` ([`cleanup_all`]).
//!
//! On shared object storage (`--storage`) every node sees the same files: deletions go
//! through the coordinator's own store, a file is garbage only if no placement on any node
//! lists it, and reconciliation lists the store once for the whole cluster
//! ([`Cluster::file_home`]).
//!
//! Why reconciliation never deletes a file a statement still needs: the node lists its files
//! first, skipping those it is writing; then the coordinator claims the listed files that are
//! not in flight ([`crate::cluster::in_flight_writes`]), then takes the catalog snapshot. A
//! writer registers a file as in flight before the node can create it and unregisters it only
//! after its commit (or deletion). So a file listed by the node is either still registered
//! when it is claimed, or was committed before the snapshot is taken, or is garbage. A file
//! with an owed deletion in that snapshot is left to the retirement or retry that owes it (a
//! commit records its garbage before it registers it as retiring). The grace period is a
//! second guard (and covers other clocks and processes).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shardfusion_catalog::FileMeta;
use shardfusion_catalog::cleanup::CleanupPolicy;
use shardfusion_common::ids::GroupId;
use shardfusion_common::wire::ShardFileEntry;
use shardfusion_executor::shard_inventory::{ActiveWrites, delete_shard_file, list_shard_files};
use tokio::sync::Notify;

use crate::cluster::in_flight_writes::{Claim, InFlightWrites};
use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};

/// When and how carefully orphan files are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanCleanupConfig {
    /// Files younger than this are never taken for orphans, whatever the catalog says.
    pub grace_period: Duration,
    /// How often owed deletions (`pg_dist_cleanup`) are retried.
    pub retry_interval: Duration,
    /// How often every node's files are reconciled with the catalog.
    pub reconcile_interval: Duration,
}

impl Default for OrphanCleanupConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(3600),
            retry_interval: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(600),
        }
    }
}

/// The coordinator's orphan-collection state: its settings, the files statements are writing,
/// and the nodes that registered since the background task last ran.
#[derive(Debug, Default)]
pub struct OrphanCleanup {
    config: Mutex<OrphanCleanupConfig>,
    in_flight: InFlightWrites,
    registered: Mutex<Vec<GroupId>>,
    wake: Notify,
}

impl OrphanCleanup {
    pub fn config(&self) -> OrphanCleanupConfig {
        *self.config.lock()
    }

    pub fn set_config(&self, config: OrphanCleanupConfig) {
        *self.config.lock() = config;
        self.wake.notify_one();
    }

    pub fn in_flight(&self) -> &InFlightWrites {
        &self.in_flight
    }

    /// A worker (re)registered: carry out what it is owed and reconcile it soon.
    pub fn worker_registered(&self, group: GroupId) {
        self.registered.lock().push(group);
        self.wake.notify_one();
    }
}

/// Deletes `paths` on the node of `group` (through the coordinator's own root for group 0,
/// and for every group on shared storage).
async fn delete_on(cluster: &Cluster, group: GroupId, paths: &[String]) -> Result<()> {
    tracing::debug!("deleting on group {group}: {paths:?}");
    if cluster.file_home(group) == GroupId::COORDINATOR {
        for path in paths {
            delete_shard_file(&cluster.root, path)
                .await
                .map_err(|e| SchedulerError::Worker {
                    node: "coordinator".into(),
                    status: e.into(),
                })?;
        }
        return Ok(());
    }
    let snapshot = cluster.catalog.snapshot();
    let node = snapshot
        .node_of_group(group)
        .ok_or_else(|| SchedulerError::invalid(format!("no node holds placement group {group}")))?;
    cluster
        .workers
        .delete_files(&node.url(), paths.to_vec())
        .await
}

/// Deletes files no committed catalog state refers to any more. What a node confirms is
/// struck from `pg_dist_cleanup`; what it cannot is recorded there, to be retried.
pub async fn delete_garbage(cluster: &Cluster, files: Vec<(GroupId, FileMeta)>) {
    let mut by_group: BTreeMap<GroupId, Vec<String>> = BTreeMap::new();
    for (group, file) in files {
        by_group.entry(group).or_default().push(file.path);
    }
    for (group, paths) in by_group {
        let recorded = match delete_on(cluster, group, &paths).await {
            Ok(()) => cluster.catalog.complete_cleanup(group, &paths).map(|_| ()),
            Err(e) => {
                tracing::warn!(
                    "could not delete {} garbage files on group {group}: {e}; they are kept in \
                     pg_dist_cleanup and deleted when the node is reachable",
                    paths.len()
                );
                cluster
                    .catalog
                    .record_cleanup(group, &paths, CleanupPolicy::Always)
            }
        };
        if let Err(e) = recorded {
            tracing::warn!("could not update pg_dist_cleanup for group {group}: {e}");
        }
    }
}

/// Strikes the deletion records of files the catalog lists (again): they are live.
pub fn strike_records(cluster: &Cluster, files: Vec<(GroupId, String)>) {
    let mut by_group: BTreeMap<GroupId, Vec<String>> = BTreeMap::new();
    for (group, path) in files {
        by_group.entry(group).or_default().push(path);
    }
    for (group, paths) in by_group {
        if let Err(e) = cluster.catalog.complete_cleanup(group, &paths) {
            tracing::warn!("could not update pg_dist_cleanup for group {group}: {e}");
        }
    }
}

/// Carries out the deletions recorded in `pg_dist_cleanup` (on `only`, or everywhere);
/// returns how many records were completed.
///
/// The paths are claimed first ([`InFlightWrites::claim`]: what some operation of this
/// process still owns, a copy before its switch or a retiring file older statements may
/// read, is left to it), and decided on with a snapshot taken after the claim: a file the
/// catalog lists (again) is never deleted, and a record that left the catalog meanwhile is
/// done. A garbage-making commit that ran meanwhile may not have registered its retiring
/// files yet: its records (deferred on success) wait for the next retry.
pub async fn retry_pending(cluster: &Cluster, only: Option<GroupId>) -> usize {
    let watch = cluster.retirement.watch();
    let records = cluster.catalog.snapshot();
    let mut by_home: BTreeMap<GroupId, Vec<String>> = BTreeMap::new();
    for record in &records.cleanup {
        if only.is_none_or(|g| g == record.group_id) {
            by_home
                .entry(cluster.file_home(record.group_id))
                .or_default()
                .push(record.object_name.clone());
        }
    }
    if by_home.is_empty() {
        return 0;
    }
    let claims: HashMap<GroupId, Claim> = by_home
        .into_iter()
        .map(|(home, paths)| (home, cluster.orphans.in_flight.claim(cluster, home, paths)))
        .collect();
    let snapshot = cluster.catalog.snapshot();
    let quiet = cluster.retirement.quiet_since(&watch);
    let referenced = cluster.referenced_files(&snapshot);
    let mut by_group: BTreeMap<GroupId, Vec<String>> = BTreeMap::new();
    let mut live = Vec::new();
    for record in &snapshot.cleanup {
        let home = cluster.file_home(record.group_id);
        let claimed = claims
            .get(&home)
            .is_some_and(|c| c.holds(&record.object_name));
        if !claimed || only.is_some_and(|g| g != record.group_id) {
            continue;
        }
        if referenced.contains(&(home, record.object_name.as_str())) {
            live.push((record.group_id, record.object_name.clone()));
        } else if quiet || record.policy != CleanupPolicy::DeferredOnSuccess {
            by_group
                .entry(record.group_id)
                .or_default()
                .push(record.object_name.clone());
        }
    }
    let mut done = live.len();
    strike_records(cluster, live);
    for (group, paths) in by_group {
        tracing::debug!("carrying out owed deletions on group {group}");
        match delete_on(cluster, group, &paths).await {
            Ok(()) => match cluster.catalog.complete_cleanup(group, &paths) {
                Ok(n) => done += n,
                Err(e) => tracing::warn!("could not update pg_dist_cleanup: {e}"),
            },
            Err(e) => tracing::debug!("owed deletions on group {group} still pending: {e}"),
        }
    }
    drop(claims);
    done
}

/// The shard files on the node of `group`, with their ages.
async fn list_on(cluster: &Cluster, group: GroupId) -> Result<Vec<ShardFileEntry>> {
    if cluster.file_home(group) == GroupId::COORDINATOR {
        // The coordinator's own writes are all registered in `InFlightWrites`.
        return list_shard_files(&cluster.root, &ActiveWrites::default())
            .await
            .map_err(|e| SchedulerError::Worker {
                node: "coordinator".into(),
                status: tonic::Status::internal(format!("cannot list shard files: {e}")),
            });
    }
    let snapshot = cluster.catalog.snapshot();
    let node = snapshot
        .node_of_group(group)
        .ok_or_else(|| SchedulerError::invalid(format!("no node holds placement group {group}")))?;
    cluster.workers.list_shard_files(&node.url()).await
}

/// Deletes the shard files on the node of `group` (on shared storage: anywhere) that nothing
/// refers to and that are older than `grace`; returns how many. See the module docs for why
/// this is safe.
pub async fn reconcile(cluster: &Cluster, group: GroupId, grace: Duration) -> Result<usize> {
    let group = cluster.file_home(group);
    // Order matters: the node's listing, then the claim (which skips files in flight), then
    // the snapshot.
    let listed = list_on(cluster, group).await?;
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let old: Vec<(String, String)> = listed
        .into_iter()
        .filter(|f| f.age_ms >= grace_ms)
        .map(|f| {
            let final_name = f.path.split_once('#').map_or(f.path.as_str(), |(n, _)| n);
            (final_name.to_string(), f.path)
        })
        .collect();
    let claim = cluster.orphans.in_flight.claim(
        cluster,
        group,
        old.iter().map(|(final_name, _)| final_name.clone()),
    );
    let snapshot = cluster.catalog.snapshot();
    // Owed deletions are carried out by the retirement or the retry that owes them: a file
    // whose commit has not registered it as retiring yet is left to them.
    let kept: HashSet<&str> = cluster
        .referenced_files(&snapshot)
        .into_iter()
        .filter(|(home, _)| *home == group)
        .map(|(_, path)| path)
        .chain(
            (snapshot.cleanup.iter())
                .filter(|r| cluster.file_home(r.group_id) == group)
                .map(|r| r.object_name.as_str()),
        )
        .collect();
    let orphans: Vec<String> = old
        .into_iter()
        .filter(|(final_name, path)| claim.holds(final_name) && !kept.contains(path.as_str()))
        .map(|(_, path)| path)
        .collect();
    if orphans.is_empty() {
        return Ok(0);
    }
    tracing::info!(
        "deleting {} orphaned shard files on group {group}",
        orphans.len()
    );
    delete_on(cluster, group, &orphans).await?;
    drop(claim);
    Ok(orphans.len())
}

/// `citus_cleanup_orphaned_resources()`: every owed deletion, then reconciliation of the
/// coordinator and every worker. Returns how many files were removed; fails if a node could
/// not be reconciled (the others still are).
pub async fn cleanup_all(cluster: &Cluster) -> Result<usize> {
    let grace = cluster.orphans.config().grace_period;
    let mut removed = retry_pending(cluster, None).await;
    let snapshot = cluster.catalog.snapshot();
    let mut groups = vec![GroupId::COORDINATOR];
    groups.extend(snapshot.active_workers().iter().map(|n| n.group_id));
    groups.retain(|g| cluster.file_home(*g) == *g);
    let mut first_error = None;
    for group in groups {
        match reconcile(cluster, group, grace).await {
            Ok(n) => removed += n,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// The background collector: retries owed deletions every `retry_interval` (and when a
/// worker registers), reconciles a worker when it registers and every node each
/// `reconcile_interval`. Runs until dropped.
pub async fn run(cluster: Arc<Cluster>) {
    // What a previous run owed (garbage of its last changes, copies of a move it did not
    // finish) is carried out first.
    retry_pending(&cluster, None).await;
    let mut last_full = Instant::now();
    loop {
        let config = cluster.orphans.config();
        tokio::select! {
            _ = cluster.orphans.wake.notified() => {}
            _ = tokio::time::sleep(config.retry_interval) => {}
        }
        let config = cluster.orphans.config();
        retry_pending(&cluster, None).await;
        let mut groups: Vec<GroupId> = std::mem::take(&mut *cluster.orphans.registered.lock());
        if last_full.elapsed() >= config.reconcile_interval {
            last_full = Instant::now();
            groups.push(GroupId::COORDINATOR);
            let snapshot = cluster.catalog.snapshot();
            groups.extend(snapshot.active_workers().iter().map(|n| n.group_id));
        }
        groups = groups.into_iter().map(|g| cluster.file_home(g)).collect();
        groups.sort();
        groups.dedup();
        for group in groups {
            if let Err(e) = reconcile(&cluster, group, config.grace_period).await {
                tracing::debug!("could not reconcile the files of group {group}: {e}");
            }
        }
    }
}
