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
//! first, skipping those it is writing; then the coordinator reads the in-flight set, then the
//! catalog snapshot. A writer registers a file as in flight before the node can create it and
//! unregisters it only after its commit (or deletion). So a file listed by the node is either
//! still registered when the set is read, or was committed before the snapshot is taken, or is
//! garbage. The grace period is a second guard (and covers other clocks and processes).

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

/// Files that statements are writing and have not committed or deleted yet, per node group.
#[derive(Debug, Clone, Default)]
pub struct InFlightWrites {
    paths: Arc<Mutex<HashMap<(GroupId, String), usize>>>,
}

/// Keeps one file registered in [`InFlightWrites`] until dropped.
#[derive(Debug)]
pub struct InFlightWrite {
    writes: InFlightWrites,
    key: (GroupId, String),
}

impl InFlightWrites {
    pub fn begin(&self, group: GroupId, path: &str) -> InFlightWrite {
        let key = (group, path.to_string());
        *self.paths.lock().entry(key.clone()).or_default() += 1;
        InFlightWrite {
            writes: self.clone(),
            key,
        }
    }

    /// The paths in flight whose files live where `home` says ([`Cluster::file_home`]).
    fn at_home(&self, cluster: &Cluster, home: GroupId) -> HashSet<String> {
        self.paths
            .lock()
            .keys()
            .filter(|(g, _)| cluster.file_home(*g) == home)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

impl Drop for InFlightWrite {
    fn drop(&mut self) {
        let mut paths = self.writes.paths.lock();
        if let Some(count) = paths.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                paths.remove(&self.key);
            }
        }
    }
}

/// Deletes `paths` on the node of `group` (through the coordinator's own root for group 0,
/// and for every group on shared storage).
async fn delete_on(cluster: &Cluster, group: GroupId, paths: &[String]) -> Result<()> {
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
pub async fn retry_pending(cluster: &Cluster, only: Option<GroupId>) -> usize {
    let snapshot = cluster.catalog.snapshot();
    let mut by_group: BTreeMap<GroupId, Vec<String>> = BTreeMap::new();
    let mut in_flight: HashMap<GroupId, HashSet<String>> = HashMap::new();
    let mut live = Vec::new();
    // A commit between recording its garbage and retiring it: its records wait for the next
    // retry (the files may still be read).
    let committing = cluster.retirement.commit_in_progress();
    let referenced = if snapshot.cleanup.is_empty() {
        HashSet::new()
    } else {
        cluster.referenced_files(&snapshot)
    };
    for record in &snapshot.cleanup {
        // A file some operation of this process still owns (a copy before its switch, a
        // retiring file older statements may read) is left to that operation; a file the
        // catalog lists is never deleted.
        let home = cluster.file_home(record.group_id);
        let owned = in_flight
            .entry(home)
            .or_insert_with(|| cluster.orphans.in_flight.at_home(cluster, home))
            .contains(&record.object_name);
        if !owned && referenced.contains(&(home, record.object_name.as_str())) {
            live.push((record.group_id, record.object_name.clone()));
            continue;
        }
        let waits = owned || (committing && record.policy == CleanupPolicy::DeferredOnSuccess);
        if !waits && only.is_none_or(|g| g == record.group_id) {
            by_group
                .entry(record.group_id)
                .or_default()
                .push(record.object_name.clone());
        }
    }
    let mut done = live.len();
    strike_records(cluster, live);
    for (group, paths) in by_group {
        match delete_on(cluster, group, &paths).await {
            Ok(()) => match cluster.catalog.complete_cleanup(group, &paths) {
                Ok(n) => done += n,
                Err(e) => tracing::warn!("could not update pg_dist_cleanup: {e}"),
            },
            Err(e) => tracing::debug!("owed deletions on group {group} still pending: {e}"),
        }
    }
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
    // Order matters: the node's listing, then the in-flight set, then the snapshot.
    let listed = list_on(cluster, group).await?;
    let in_flight = cluster.orphans.in_flight.at_home(cluster, group);
    let snapshot = cluster.catalog.snapshot();
    let referenced: HashSet<&str> = cluster
        .referenced_files(&snapshot)
        .into_iter()
        .filter(|(home, _)| *home == group)
        .map(|(_, path)| path)
        .collect();
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let orphans: Vec<String> = listed
        .into_iter()
        .filter(|f| {
            let final_name = f.path.split_once('#').map_or(f.path.as_str(), |(n, _)| n);
            f.age_ms >= grace_ms
                && !referenced.contains(f.path.as_str())
                && !in_flight.contains(final_name)
        })
        .map(|f| f.path)
        .collect();
    if orphans.is_empty() {
        return Ok(0);
    }
    tracing::info!(
        "deleting {} orphaned shard files on group {group}",
        orphans.len()
    );
    delete_on(cluster, group, &orphans).await?;
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
