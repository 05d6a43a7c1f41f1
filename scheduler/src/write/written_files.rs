//! The files a statement wrote and has not committed yet ([`WrittenFiles`]), and their
//! commit: appended to the table or replacing its files, following shards that moved
//! meanwhile, checked against the table's keys, or recorded in the statement's
//! transaction; deleted if the commit fails or the statement is dropped.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use shardfusion_catalog::{CatalogError, CatalogSnapshot, ConcurrentChange, FileMeta};
use shardfusion_common::ids::{GroupId, PlacementId};

use crate::cluster::in_flight_writes::InFlightWrite;
use crate::cluster::shared_state::Cluster;
use crate::error::Result;
use crate::write::placement_follow::follow_placements;
use crate::write::unique_keys;

/// How long a commit waits for a shard move to switch the placements it wrote to.
const MOVE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// How often a commit follows placements that moved before it gives up.
const MAX_FOLLOWS: usize = 8;

/// Files a statement wrote but has not committed yet. Dropped without being committed or
/// discarded (the statement was dropped in between), it deletes them.
#[derive(Debug)]
pub struct WrittenFiles {
    pub files: Vec<(PlacementId, GroupId, FileMeta)>,
    pub rows: u64,
    /// The columns the rows were written with; the commit checks the table still takes them.
    pub schema: SchemaRef,
    /// Keeps the files registered as in flight until they are committed or deleted.
    pub(crate) in_flight: Vec<InFlightWrite>,
    /// Set while the files are owed a commit or a deletion.
    pub(crate) owner: Option<Arc<Cluster>>,
}

impl Drop for WrittenFiles {
    fn drop(&mut self) {
        let Some(cluster) = self.owner.take() else {
            return;
        };
        if self.files.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let files = std::mem::take(&mut self.files);
        let in_flight = std::mem::take(&mut self.in_flight);
        runtime.spawn(async move {
            let snapshot = cluster.catalog.snapshot();
            let files = files.into_iter().map(|(_, g, f)| (g, f)).collect();
            cluster.delete_garbage(&snapshot, files).await;
            drop(in_flight);
        });
    }
}

impl WrittenFiles {
    /// Files written outside a [`TableWriter`] (with their in-flight registrations), owed a
    /// commit or a deletion from now on.
    pub(crate) fn owned(
        cluster: &Arc<Cluster>,
        schema: SchemaRef,
        files: Vec<(PlacementId, GroupId, FileMeta)>,
        in_flight: Vec<InFlightWrite>,
    ) -> Self {
        Self {
            files,
            rows: 0,
            schema,
            in_flight,
            owner: Some(Arc::clone(cluster)),
        }
    }

    /// No files yet, for rows with `schema` columns (a statement that writes in rounds).
    pub fn empty(schema: SchemaRef) -> Self {
        Self {
            files: Vec::new(),
            rows: 0,
            schema,
            in_flight: Vec::new(),
            owner: None,
        }
    }

    /// Takes over the files of another write of the same statement, with their obligation
    /// to be committed or deleted.
    pub fn absorb(&mut self, mut other: WrittenFiles) {
        self.files.append(&mut other.files);
        self.in_flight.append(&mut other.in_flight);
        self.rows += other.rows;
        if let Some(owner) = other.owner.take() {
            self.owner = Some(owner);
        }
    }

    /// The files were committed by the caller (through [`Self::for_commit`]): they are no
    /// longer owed a deletion.
    pub fn committed(mut self) {
        self.owner = None;
    }

    /// The rows written, counted once per row (not per placement).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The files with the placements and node groups they were written to.
    pub fn for_commit(&self) -> Vec<(PlacementId, GroupId, FileMeta)> {
        self.files.clone()
    }

    /// Deletes the files (the statement failed, or its commit did).
    pub async fn discard(mut self, cluster: &Cluster, snapshot: &CatalogSnapshot) {
        self.owner = None;
        let files = std::mem::take(&mut self.files)
            .into_iter()
            .map(|(_, g, f)| (g, f))
            .collect();
        cluster.delete_garbage(snapshot, files).await;
    }

    /// Makes the files the table's only files in one catalog transaction (the old ones are
    /// deleted afterwards), or deletes the new files if that fails.
    pub async fn commit_replacing(
        self,
        cluster: &Arc<Cluster>,
        snapshot: &CatalogSnapshot,
        table: &str,
    ) -> Result<u64> {
        self.commit_following(cluster, snapshot, table, true).await
    }

    /// Commits the files to `table` in one catalog transaction, or deletes them.
    pub async fn commit(
        self,
        cluster: &Arc<Cluster>,
        snapshot: &CatalogSnapshot,
        table: &str,
    ) -> Result<u64> {
        self.commit_following(cluster, snapshot, table, false).await
    }

    /// Commits (adding, or `replacing` the table's files), following the shards it wrote to
    /// if they moved meanwhile: a placement being switched by a shard move makes the commit
    /// wait for the switch; a placement now on another node, or a copy a shard gained, gets
    /// the files copied there worker to worker, and the commit
    /// is tried again. So a write that raced a move is neither lost nor refused.
    /// ([`follow_placements`]).
    async fn commit_following(
        mut self,
        cluster: &Arc<Cluster>,
        snapshot: &CatalogSnapshot,
        table: &str,
        replacing: bool,
    ) -> Result<u64> {
        // In a multi-statement transaction the files wait for its COMMIT.
        if let Some(transaction) = crate::session::transaction::current() {
            let removed = if replacing {
                transaction.files_of(table)?
            } else {
                Vec::new()
            };
            let rows = self.rows;
            transaction.record(cluster, table, removed, self).await?;
            return Ok(rows);
        }
        // Primary and unique keys: checked against the latest state, committed under the
        // table's key lock.
        let added = self.for_commit();
        let checked =
            unique_keys::lock_and_check_added(cluster, table, &self.schema, added, replacing);
        let _key_lock = match checked.await {
            Ok(lock) => lock,
            Err(e) => {
                self.discard(cluster, snapshot).await;
                return Err(e);
            }
        };
        let waiting_since = std::time::Instant::now();
        let mut followed = 0;
        let _committing = replacing.then(|| cluster.retirement.committing());
        loop {
            let files = self.for_commit();
            let committed = if replacing {
                cluster.catalog.replace_files(table, &self.schema, &files)
            } else {
                (cluster.catalog.commit_files(table, &self.schema, &files)).map(|()| Vec::new())
            };
            let change = match &committed {
                Err(CatalogError::Conflict { change, .. }) => Some(*change),
                _ => None,
            };
            match change {
                Some(ConcurrentChange::BeingMoved) if waiting_since.elapsed() < MOVE_WAIT => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Some(ConcurrentChange::PlacementMoved | ConcurrentChange::PlacementAdded)
                    if followed < MAX_FOLLOWS =>
                {
                    followed += 1;
                    match follow_placements(cluster, table, &self.files).await {
                        Ok(moved) => {
                            self.in_flight.extend(moved.protected);
                            let latest = cluster.catalog.snapshot();
                            cluster.delete_garbage(&latest, moved.stray).await;
                            self.files = moved.files;
                        }
                        Err(e) => {
                            self.discard(cluster, snapshot).await;
                            return Err(e);
                        }
                    }
                }
                _ => return self.settle(cluster, snapshot, committed).await,
            }
        }
    }

    /// After a commit attempt: deletes what is now garbage (the replaced files on success,
    /// the new files on failure) and returns the row count or the error.
    async fn settle(
        mut self,
        cluster: &Arc<Cluster>,
        snapshot: &CatalogSnapshot,
        committed: std::result::Result<Vec<(GroupId, FileMeta)>, shardfusion_catalog::CatalogError>,
    ) -> Result<u64> {
        let rows = self.rows;
        match committed {
            Ok(garbage) => {
                // Committed: the files are the table's now, not garbage.
                crate::limits::commit_point::reached();
                self.owner = None;
                cluster.retire_files(garbage);
                Ok(rows)
            }
            Err(e) => {
                self.discard(cluster, snapshot).await;
                Err(e.into())
            }
        }
    }
}
