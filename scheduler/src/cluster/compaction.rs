//! Background compaction: a shard's many small files (one per point `INSERT`) rewritten as
//! one file sorted by the distribution column, committed atomically like any other write.
//!
//! Every [`CompactionConfig::interval`], and on `SELECT shardfusion_compact_table(...)`, each
//! shard whose placements hold at least [`CompactionConfig::min_files`] files of fewer than
//! [`CompactionConfig::small_file_rows`] rows each gets them merged:
//!
//! 1. the coordinator reads those files (and only those: a scan over a copy of the table's
//!    metadata narrowed to them, run on the workers like any query) as of one snapshot;
//! 2. `TableWriter` writes the rows back — they all hash into that shard — as one new file per
//!    placement, in the writer's sorted runs (row groups sorted by the distribution column,
//!    page indexes);
//! 3. one catalog transaction swaps the files it read for the new ones
//!    ([`shardfusion_catalog::Catalog::compact_files`]). Files committed meanwhile stay as they
//!    are; if any file it read is gone (TRUNCATE, a replacing load, another compaction), the
//!    swap is refused, the new file deleted, and nothing changes. A written row count that
//!    differs from the files' is refused the same way.
//!
//! So a query sees either the small files or the compacted one, never both or neither. The
//! replaced files are deleted only after every statement that started before the swap has
//! finished (it may be reading them); they are recorded in `pg_dist_cleanup` then, and, should
//! the coordinator stop before, orphan reconciliation removes them later.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shardfusion_catalog::cleanup::CleanupPolicy;
use shardfusion_catalog::{
    CatalogError, CatalogSnapshot, FileMeta, PlacementMeta, ShardMeta, TableMeta,
};
use shardfusion_common::ids::{GroupId, PlacementId};
use tokio::sync::Notify;

use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};
use crate::session::statement_context::session_for;
use crate::session::table_provider::ShardedTableProvider;
use crate::write::table_writer::TableWriter;

/// When and what compaction merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionConfig {
    /// How often every table is looked at; zero turns background compaction off (the SQL
    /// function still works).
    pub interval: Duration,
    /// A shard is compacted once it has this many small files.
    pub min_files: usize,
    /// Files with fewer rows than this are small: one sorted run of the writer.
    pub small_file_rows: u64,
    /// Rows merged per shard at most in one pass (the oldest small files first).
    pub max_rows: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            min_files: 8,
            small_file_rows: 122_880,
            max_rows: 4 * 122_880,
        }
    }
}

impl CompactionConfig {
    /// The defaults, with `SHARDFUSION_COMPACTION_INTERVAL_SECS` and
    /// `SHARDFUSION_COMPACTION_MIN_FILES` where set to a number.
    pub fn from_env() -> Self {
        let mut config = Self::default();
        let number = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(secs) = number("SHARDFUSION_COMPACTION_INTERVAL_SECS") {
            config.interval = Duration::from_secs(secs);
        }
        if let Some(files) = number("SHARDFUSION_COMPACTION_MIN_FILES") {
            config.min_files = (files as usize).max(2);
        }
        config
    }
}

/// The coordinator's compaction settings.
#[derive(Debug)]
pub struct Compaction {
    config: Mutex<CompactionConfig>,
    /// Wakes the background task when the settings change.
    changed: Notify,
}

impl Default for Compaction {
    fn default() -> Self {
        Self {
            config: Mutex::new(CompactionConfig::from_env()),
            changed: Notify::new(),
        }
    }
}

impl Compaction {
    pub fn config(&self) -> CompactionConfig {
        *self.config.lock()
    }

    /// Changes the settings; the background task follows the new interval at once.
    pub fn set_config(&self, config: CompactionConfig) {
        *self.config.lock() = config;
        self.changed.notify_one();
    }
}

/// Compacts every table; returns how many files were replaced.
pub async fn compact_all(cluster: &Arc<Cluster>) -> Result<usize> {
    let snapshot = cluster.catalog.snapshot();
    let mut replaced = 0;
    for table in snapshot.tables.values() {
        replaced += compact_in(cluster, &snapshot, table).await?;
    }
    Ok(replaced)
}

/// Compacts the shards of `table` that qualify; returns how many files were replaced.
pub async fn compact_table(cluster: &Arc<Cluster>, table: &str) -> Result<usize> {
    let snapshot = cluster.catalog.snapshot();
    let meta = snapshot.table(table).ok_or_else(|| {
        SchedulerError::Catalog(CatalogError::TableNotFound {
            name: table.to_string(),
        })
    })?;
    compact_in(cluster, &snapshot, meta).await
}

async fn compact_in(
    cluster: &Arc<Cluster>,
    snapshot: &Arc<CatalogSnapshot>,
    table: &Arc<TableMeta>,
) -> Result<usize> {
    let config = cluster.compaction.config();
    let mut replaced = 0;
    for shard in &table.shards {
        let Some(files) = small_files(shard, &config) else {
            continue;
        };
        match compact_shard(cluster, snapshot, table, shard, &files).await {
            Ok(n) => replaced += n,
            // Someone else changed the shard first: nothing was changed, try next time.
            Err(SchedulerError::Catalog(CatalogError::Conflict { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(replaced)
}

/// The small files of `shard` to merge, oldest first, if there are enough; every placement
/// must list the same ones (they were written together).
fn small_files(shard: &ShardMeta, config: &CompactionConfig) -> Option<Vec<FileMeta>> {
    let small = |p: &PlacementMeta| -> BTreeSet<String> {
        p.files
            .iter()
            .filter(|f| f.row_count < config.small_file_rows)
            .map(|f| f.path.clone())
            .collect()
    };
    let first = shard.placements.first()?;
    let paths = small(first);
    if paths.len() < config.min_files || shard.placements.iter().any(|p| small(p) != paths) {
        return None;
    }
    let mut chosen = Vec::new();
    let mut rows = 0;
    // Files are listed in commit order; the oldest go first.
    for file in first.files.iter().filter(|f| paths.contains(&f.path)) {
        if rows + file.row_count > config.max_rows && chosen.len() >= 2 {
            break;
        }
        rows += file.row_count;
        chosen.push(file.clone());
    }
    (chosen.len() >= 2).then_some(chosen)
}

/// Merges `files` of `shard` into one file per placement; returns how many were replaced.
async fn compact_shard(
    cluster: &Arc<Cluster>,
    snapshot: &Arc<CatalogSnapshot>,
    table: &Arc<TableMeta>,
    shard: &ShardMeta,
    files: &[FileMeta],
) -> Result<usize> {
    let mut narrowed = TableMeta::clone(table);
    let mut only = shard.clone();
    only.placements.truncate(1);
    only.placements[0].files = files.to_vec();
    narrowed.shards = vec![only];
    let provider = ShardedTableProvider::new(
        Arc::clone(cluster),
        Arc::clone(snapshot),
        Arc::new(narrowed),
    );
    let ctx = session_for(cluster, Arc::clone(snapshot))?;
    let rows = ctx.read_table(Arc::new(provider))?.execute_stream().await?;
    let writer = TableWriter::for_table(Arc::clone(cluster), Arc::clone(snapshot), table)?;
    let written = writer.write_all(rows, Ok).await?;
    let expected: u64 = files.iter().map(|f| f.row_count).sum();
    let placements = shard.placements.len() as u64;
    let new_files = written.for_commit();
    let rows = written.rows();
    if rows != expected || new_files.len() as u64 != placements {
        written.discard(cluster, snapshot).await;
        return Err(SchedulerError::invalid(format!(
            "compacting shard {} of {}: read {rows} rows where its files hold {expected}; \
             nothing was changed",
            shard.shard_id, table.name
        )));
    }
    let replaced: Vec<(PlacementId, String)> = shard
        .placements
        .iter()
        .flat_map(|p| files.iter().map(|f| (p.placement_id, f.path.clone())))
        .collect();
    let committed =
        cluster
            .catalog
            .compact_files(&table.name, &table.schema, &replaced, &new_files);
    match committed {
        Ok(old) => {
            written.committed();
            let count = old.len();
            retire(Arc::clone(cluster), old, Instant::now());
            Ok(count)
        }
        Err(e) => {
            written.discard(cluster, snapshot).await;
            Err(e.into())
        }
    }
}

/// Deletes files a compaction replaced once no statement that started before `swapped` is
/// still running (it may be reading them).
fn retire(cluster: Arc<Cluster>, files: Vec<(GroupId, FileMeta)>, swapped: Instant) {
    tokio::spawn(async move {
        while cluster.stats.activity().started_before(swapped) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut groups: Vec<GroupId> = files.iter().map(|(g, _)| *g).collect();
        groups.sort();
        groups.dedup();
        for group in groups {
            let paths: Vec<String> = files
                .iter()
                .filter(|(g, _)| *g == group)
                .map(|(_, f)| f.path.clone())
                .collect();
            if let Err(e) =
                cluster
                    .catalog
                    .record_cleanup(group, &paths, CleanupPolicy::DeferredOnSuccess)
            {
                tracing::warn!("could not record compacted files for deletion: {e}");
            }
        }
        crate::cluster::orphan_cleanup::delete_garbage(&cluster, files).await;
    });
}

/// The background compactor: every table each [`CompactionConfig::interval`]. Runs until
/// dropped.
pub async fn run(cluster: Arc<Cluster>) {
    loop {
        let interval = cluster.compaction.config().interval;
        let changed = cluster.compaction.changed.notified();
        if interval.is_zero() {
            changed.await;
            continue;
        }
        tokio::select! {
            _ = changed => continue,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = compact_all(&cluster).await {
            tracing::warn!("background compaction failed: {e}");
        }
    }
}
