//! Copying committed shard files from one node to another, worker to worker.
//!
//! The coordinator sends the receiving worker one `shardfusion.copy_shard_files` action
//! naming the source worker (its address and the identity it proved) and the files as the
//! catalog records them; the receiving worker pulls the bytes from the source over Flight and
//! verifies each copy (checksum, size, row count) before answering. The coordinator relays no
//! bytes; it checks the answer against the catalog once more.
//!
//! On shared object storage the files are already where the receiving worker reads them:
//! nothing is copied, and "copying" means the receiving worker takes them over
//! (`shardfusion.warm_shard_files`: it checks their size and row count and caches their
//! footers). Nothing is recorded for deletion then, and nothing is deleted if the operation
//! fails: the files are the source placement's own.

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::Message;
use shardfusion_catalog::cleanup::CleanupPolicy;
use shardfusion_catalog::{CatalogSnapshot, FileMeta};
use shardfusion_common::ids::GroupId;
use shardfusion_common::wire::{
    ACTION_COPY_SHARD_FILES, ACTION_WARM_SHARD_FILES, CopyShardFilesRequest,
    CopyShardFilesResponse, FileToCopy, WarmShardFilesRequest,
};

use crate::cluster::in_flight_writes::InFlightWrite;
use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};

/// Files a worker takes over from shared storage per request.
const WARM_BATCH: usize = 64;

/// Copies `files` from the node of group `from` to the node of group `to` (same paths), or
/// on shared storage has `to` take them over; returns the bytes copied.
pub async fn copy_files(
    cluster: &Cluster,
    snapshot: &CatalogSnapshot,
    from: GroupId,
    to: GroupId,
    files: &[FileMeta],
) -> Result<u64> {
    if files.is_empty() {
        return Ok(0);
    }
    let node = |group: GroupId| {
        snapshot.node_of_group(group).ok_or_else(|| {
            SchedulerError::invalid(format!(
                "no worker holds node group {group}: shard files live on workers only"
            ))
        })
    };
    let (source, target) = (node(from)?, node(to)?);
    let target_label = format!("{}:{}", target.node_name, target.node_port);
    let listed: Vec<FileToCopy> = files
        .iter()
        .map(|f| FileToCopy {
            path: f.path.clone(),
            byte_size: f.byte_size,
            row_count: f.row_count,
        })
        .collect();
    if cluster.shared_storage() {
        // In batches, each answered well within the worker timeout.
        for (batch, listed) in files.chunks(WARM_BATCH).zip(listed.chunks(WARM_BATCH)) {
            let request = WarmShardFilesRequest {
                files: listed.to_vec(),
            };
            let action =
                arrow_flight::Action::new(ACTION_WARM_SHARD_FILES, request.encode_to_vec());
            let answer = ask(cluster, &target.url(), &target_label, action).await?;
            confirm(batch, &answer, &target_label, "taking over")?;
        }
        return Ok(0);
    }
    let source_label = format!("{}:{}", source.node_name, source.node_port);
    let source_target = cluster
        .workers
        .target(&source.url(), &source_label)
        .await
        .map_err(|status| SchedulerError::Worker {
            node: source_label.clone(),
            status,
        })?;
    let request = CopyShardFilesRequest {
        source_url: source_target.url,
        source_audience: source_target.audience,
        source_label: source_label.clone(),
        files: listed,
    };
    let action = arrow_flight::Action::new(ACTION_COPY_SHARD_FILES, request.encode_to_vec());
    let answer = ask(cluster, &target.url(), &target_label, action).await?;
    confirm(
        files,
        &answer,
        &target_label,
        &format!("the copy from {source_label} of"),
    )
}

/// Sends `action` to the worker at `url` and decodes its [`CopyShardFilesResponse`].
async fn ask(
    cluster: &Cluster,
    url: &str,
    label: &str,
    action: arrow_flight::Action,
) -> Result<CopyShardFilesResponse> {
    let failed = |status: tonic::Status| SchedulerError::Worker {
        node: label.to_string(),
        status,
    };
    let results = cluster
        .workers
        .do_action(url, action)
        .await
        .map_err(failed)?;
    Ok(results
        .first()
        .map(|r| CopyShardFilesResponse::decode(r.body.clone()))
        .transpose()
        .map_err(|e| failed(tonic::Status::internal(format!("undecodable answer: {e}"))))?
        .unwrap_or_default())
}

/// Checks that `answer` confirms every one of `files` as the catalog records it; returns the
/// bytes confirmed.
fn confirm(
    files: &[FileMeta],
    answer: &CopyShardFilesResponse,
    label: &str,
    what: &str,
) -> Result<u64> {
    let mut bytes = 0;
    for file in files {
        let confirmed = answer.files.iter().find(|c| c.path == file.path);
        match confirmed {
            Some(c) if c.byte_size == file.byte_size && c.row_count == file.row_count => {
                bytes += c.byte_size;
            }
            _ => {
                return Err(SchedulerError::Worker {
                    node: label.to_string(),
                    status: tonic::Status::internal(format!(
                        "{what} {} was not confirmed with {} bytes and {} rows",
                        file.path, file.byte_size, file.row_count
                    )),
                });
            }
        }
    }
    Ok(bytes)
}

/// The files an operation (a shard move, a new reference-table copy) copied to one node
/// group so far. Each is recorded in `pg_dist_cleanup` before it is copied (deleted should
/// the operation never commit, even across a crash) and registered as in flight until the
/// operation ends; the switch strikes the records of the files it commits.
pub struct CopiedFiles {
    to: GroupId,
    copied: BTreeSet<String>,
    kept: BTreeSet<String>,
    bytes: u64,
    protected: Vec<InFlightWrite>,
}

impl CopiedFiles {
    /// Nothing copied to node group `to` yet.
    pub fn new(to: GroupId) -> Self {
        Self {
            to,
            copied: BTreeSet::new(),
            kept: BTreeSet::new(),
            bytes: 0,
            protected: Vec::new(),
        }
    }

    /// The bytes copied so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Copies the files of `files` not copied yet from node group `from`.
    pub async fn copy_new(
        &mut self,
        cluster: &Arc<Cluster>,
        snapshot: &CatalogSnapshot,
        from: GroupId,
        files: &[FileMeta],
    ) -> Result<()> {
        let new: Vec<FileMeta> = files
            .iter()
            .filter(|f| !self.copied.contains(&f.path))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let paths: Vec<String> = new.iter().map(|f| f.path.clone()).collect();
        // In flight before recorded: a collector that sees the record sees the copy's claim.
        for path in &paths {
            let in_flight = (cluster.orphans.in_flight()).begin_unclaimed(cluster, self.to, path);
            self.protected.push(in_flight.await);
            self.copied.insert(path.clone());
        }
        if !cluster.shared_storage() {
            cluster
                .catalog
                .record_cleanup(self.to, &paths, CleanupPolicy::OnFailure)?;
        }
        self.bytes += copy_files(cluster, snapshot, from, self.to, &new).await?;
        Ok(())
    }

    /// The switch committed `paths` on the target: they are the placements' files now.
    pub fn keep<'a>(&mut self, paths: impl IntoIterator<Item = &'a String>) {
        self.kept.extend(paths.into_iter().cloned());
    }

    /// Deletes the copies the switch did not commit (files that left their placement while
    /// it was copied).
    pub async fn discard_unused(self, cluster: &Arc<Cluster>) {
        let unused: Vec<String> = self.copied.difference(&self.kept).cloned().collect();
        discard(cluster, self.to, unused).await;
    }

    /// Deletes every copy (the operation failed).
    pub async fn discard_all(self, cluster: &Arc<Cluster>) {
        let all = self.copied.iter().cloned().collect();
        discard(cluster, self.to, all).await;
    }
}

/// Deletes copies nothing refers to on `group`, and strikes their records (on shared storage
/// there are no copies: the files are their source placement's).
async fn discard(cluster: &Arc<Cluster>, group: GroupId, paths: Vec<String>) {
    if paths.is_empty() || cluster.shared_storage() {
        return;
    }
    let files = paths
        .into_iter()
        .map(|path| {
            let file = FileMeta {
                path,
                row_count: 0,
                byte_size: 0,
                stats: None,
            };
            (group, file)
        })
        .collect();
    let snapshot = cluster.catalog.snapshot();
    cluster.delete_garbage(&snapshot, files).await;
}
