//! Files die late: a file a committed change took out of the catalog (DROP, TRUNCATE, a
//! replacing load, a distribution, a compaction, a shard move) is deleted only once every
//! statement that started before that commit has finished.
//!
//! A statement plans against the snapshot it took when it started and reads exactly the
//! files committed then, possibly for minutes; deleting one of them under it would fail the
//! query. So [`FileRetirement::retire`] waits until `shardfusion_stat_activity` lists no
//! statement older than the commit, then deletes the files (what a node cannot delete then
//! stays owed in `pg_dist_cleanup` and is retried). Until the deletion the files are
//! registered as in flight, so neither orphan reconciliation nor the retry of owed deletions
//! takes them first. A coordinator that stops before has no statement left that could read
//! them: at its next start the owed deletions recorded with the commit are carried out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shardfusion_catalog::FileMeta;
use shardfusion_common::ids::GroupId;
use tokio::task::JoinSet;

use crate::cluster::shared_state::Cluster;

/// How often a retirement looks whether the statements older than its commit are done.
const POLL: Duration = Duration::from_millis(50);

/// The deletions waiting for older statements to finish; they end with the coordinator.
#[derive(Debug, Default)]
pub struct FileRetirement {
    waiting: Mutex<JoinSet<()>>,
}

impl FileRetirement {
    /// Deletes `files` (garbage since a commit that happened just now) once no statement that
    /// started before now is still running.
    pub fn retire(&self, cluster: &Arc<Cluster>, files: Vec<(GroupId, FileMeta)>) {
        if files.is_empty() {
            return;
        }
        let committed = Instant::now();
        let protected: Vec<_> = files
            .iter()
            .map(|(group, file)| cluster.orphans.in_flight().begin(*group, &file.path))
            .collect();
        let cluster = Arc::clone(cluster);
        let mut waiting = self.waiting.lock();
        while waiting.try_join_next().is_some() {}
        waiting.spawn(async move {
            while cluster.stats.activity().started_before(committed) {
                tokio::time::sleep(POLL).await;
            }
            crate::cluster::orphan_cleanup::delete_garbage(&cluster, files).await;
            drop(protected);
        });
    }

    /// How many retirements are still waiting (for tests and monitoring).
    pub fn waiting(&self) -> usize {
        let mut waiting = self.waiting.lock();
        while waiting.try_join_next().is_some() {}
        waiting.len()
    }
}
