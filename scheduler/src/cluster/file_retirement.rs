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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Commits that may make files garbage and have not handed them to [`Self::retire`]
    /// yet: while any runs, owed deletions of that kind are not retried.
    committing: Arc<AtomicUsize>,
    /// How many such commits ever started.
    started: AtomicU64,
}

/// Whether garbage-making commits were running at one moment, to learn later whether one
/// ran since ([`FileRetirement::quiet_since`]).
#[derive(Debug, Clone, Copy)]
pub struct CommitWatch {
    started: u64,
    busy: bool,
}

/// Held from before a commit that makes files garbage until they were retired.
#[derive(Debug)]
pub struct CommitInProgress(Arc<AtomicUsize>);

impl Drop for CommitInProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FileRetirement {
    /// Marks a commit that will make files garbage as in progress, until the guard drops
    /// (after [`Self::retire`]): the retry of owed deletions must not take its files in
    /// between the commit (which records them) and their retirement.
    pub fn committing(&self) -> CommitInProgress {
        self.started.fetch_add(1, Ordering::AcqRel);
        self.committing.fetch_add(1, Ordering::AcqRel);
        CommitInProgress(Arc::clone(&self.committing))
    }

    /// The garbage-making commits running now.
    pub fn watch(&self) -> CommitWatch {
        CommitWatch {
            started: self.started.load(Ordering::Acquire),
            busy: self.committing.load(Ordering::Acquire) > 0,
        }
    }

    /// Whether no garbage-making commit ran at any time since `watch` was taken: then every
    /// file recorded as garbage in a snapshot taken since was registered as retiring before.
    pub fn quiet_since(&self, watch: &CommitWatch) -> bool {
        !watch.busy && self.started.load(Ordering::Acquire) == watch.started
    }

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
            // A file the catalog lists again (its placement moved back to this node, or, on
            // shared storage, another placement lists the same object) is live: it is not
            // deleted, and its deletion record is struck.
            let snapshot = cluster.catalog.snapshot();
            let referenced = cluster.referenced_files(&snapshot);
            let (live, files): (Vec<_>, Vec<_>) = files.into_iter().partition(|(group, file)| {
                referenced.contains(&(cluster.file_home(*group), file.path.as_str()))
            });
            let live = live.into_iter().map(|(group, file)| (group, file.path));
            crate::cluster::orphan_cleanup::strike_records(&cluster, live.collect());
            crate::cluster::orphan_cleanup::delete_garbage(&cluster, files).await;
            drop(protected);
        });
    }
}
