//! Background compaction: a shard's many small files (one per point `INSERT`) rewritten as
//! one file sorted by the distribution column, committed atomically like any other write.
//!
//! Every [`CompactionConfig::interval`], and on `SELECT shardfusion_compact_table(...)`, each
//! shard of a distributed or reference table whose placements hold at least
//! [`CompactionConfig::min_files`] files of fewer than [`CompactionConfig::small_file_rows`]
//! rows each gets them merged (one pass at a time). Local tables are left alone: their files
//! move into shards when they are distributed, and that move must see the files it read.
//!
//! 1. the coordinator reads those files (and only those: a scan over a copy of the table's
//!    metadata narrowed to them, run on the workers like any query) as of one snapshot;
//! 2. `TableWriter` writes the rows back — they all hash into that shard — as one new file per
//!    placement, in the writer's sorted runs (row groups sorted by the distribution column,
//!    page indexes);
//! 3. one catalog transaction swaps the files it read for the new ones
//!    ([`Cluster::replace_files`]). Files committed meanwhile stay as they are; if any file
//!    it read is gone (TRUNCATE, a replacing load, another compaction), the swap is refused,
//!    the new file deleted, and nothing changes. A written row count that
//!    differs from the files' is refused the same way.
//!
//! So a query sees either the small files or the compacted one, never both or neither. The
//! replaced files are deleted only after every statement that started before the swap has
//! finished (it may be reading them); what a node cannot delete then is recorded in
//! `pg_dist_cleanup` and retried. Until then they are registered as in flight, from before
//! the swap, so orphan reconciliation (which deletes files the catalog does not list) leaves
//! them alone; should the coordinator stop before, reconciliation removes them later.

use std::sync::Arc;
use std::time::Duration;

use datafusion::error::DataFusionError;
use parking_lot::Mutex;
use shardfusion_catalog::{
    CatalogError, CatalogSnapshot, FileMeta, PlacementMeta, ShardMeta, TableKind, TableMeta,
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

/// The coordinator's compaction settings and the tasks deleting what it replaced.
#[derive(Debug)]
pub struct Compaction {
    config: Mutex<CompactionConfig>,
    /// Wakes the background task when the settings change.
    changed: Notify,
    /// Held by a pass: one at a time, so no pass reads files another one replaces.
    pass: tokio::sync::Mutex<()>,
}

impl Default for Compaction {
    fn default() -> Self {
        Self {
            config: Mutex::new(CompactionConfig::default()),
            changed: Notify::new(),
            pass: tokio::sync::Mutex::new(()),
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

/// Compacts every distributed and reference table; returns how many files were replaced. A
/// table that fails is reported in the log and the others are still compacted.
pub async fn compact_all(cluster: &Arc<Cluster>) -> usize {
    let _pass = cluster.compaction.pass.lock().await;
    let snapshot = cluster.catalog.snapshot();
    let mut replaced = 0;
    for table in snapshot.tables.values() {
        match compact_in(cluster, &snapshot, table).await {
            Ok(n) => replaced += n,
            Err(e) => tracing::warn!("compacting {} failed: {e}", table.name),
        }
    }
    replaced
}

/// Compacts the shards of `table` that qualify; returns how many files were replaced.
pub async fn compact_table(cluster: &Arc<Cluster>, table: &str) -> Result<usize> {
    let _pass = cluster.compaction.pass.lock().await;
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
    if matches!(table.kind, TableKind::Local) {
        return Ok(0);
    }
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

/// The small files of `shard` to merge, per placement (in the order of `shard.placements`),
/// oldest first, if there are enough. Every statement writes one file to each placement, so
/// the placements must list small files of the same row counts in the same order (a
/// reference table's copies have paths of their own); otherwise the shard is left alone.
fn small_files(shard: &ShardMeta, config: &CompactionConfig) -> Option<Vec<Vec<FileMeta>>> {
    let small = |p: &PlacementMeta| -> Vec<FileMeta> {
        p.files
            .iter()
            .filter(|f| f.row_count < config.small_file_rows)
            .cloned()
            .collect()
    };
    let per_placement: Vec<Vec<FileMeta>> = shard.placements.iter().map(small).collect();
    let first = per_placement.first()?;
    let counts = |files: &[FileMeta]| files.iter().map(|f| f.row_count).collect::<Vec<_>>();
    if first.len() < config.min_files || per_placement.iter().any(|p| counts(p) != counts(first)) {
        return None;
    }
    // Files are listed in commit order; the oldest go first, up to the row cap.
    let mut take = 0;
    let mut rows = 0;
    for file in first {
        if rows + file.row_count > config.max_rows && take >= 2 {
            break;
        }
        rows += file.row_count;
        take += 1;
    }
    if take < 2 {
        return None;
    }
    Some(
        per_placement
            .into_iter()
            .map(|mut files| {
                files.truncate(take);
                files
            })
            .collect(),
    )
}

/// Merges `files` of `shard` (per placement) into one file per placement; returns how many
/// were replaced.
async fn compact_shard(
    cluster: &Arc<Cluster>,
    snapshot: &Arc<CatalogSnapshot>,
    table: &Arc<TableMeta>,
    shard: &ShardMeta,
    files: &[Vec<FileMeta>],
) -> Result<usize> {
    // The table as if the shard held only these files (each placement its own copies; the
    // scan reads an active one).
    let mut only = shard.clone();
    for (placement, chosen) in only.placements.iter_mut().zip(files) {
        placement.files = chosen.clone();
    }
    let mut narrowed = TableMeta::clone(table);
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
    let expected: u64 = files
        .first()
        .map_or(0, |f| f.iter().map(|f| f.row_count).sum());
    let new_files = written.for_commit();
    let rows = written.rows();
    if rows != expected || new_files.len() != shard.placements.len() {
        written.discard(cluster, snapshot).await;
        return Err(SchedulerError::DataFusion(DataFusionError::Internal(
            format!(
                "compacting shard {} of {}: read {rows} rows into {} files where its files hold \
             {expected} rows on {} placements; nothing was changed",
                shard.shard_id,
                table.name,
                new_files.len(),
                shard.placements.len()
            ),
        )));
    }
    let replaced: Vec<(PlacementId, GroupId, String)> = shard
        .placements
        .iter()
        .zip(files)
        .flat_map(|(p, chosen)| {
            chosen
                .iter()
                .map(|f| (p.placement_id, p.group_id, f.path.clone()))
        })
        .collect();
    match cluster.replace_files(table, &replaced, &new_files) {
        Ok(count) => {
            written.committed();
            Ok(count)
        }
        Err(e) => {
            written.discard(cluster, snapshot).await;
            Err(e.into())
        }
    }
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
        compact_all(&cluster).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardfusion_common::ids::{GroupId, ShardId};

    fn file(path: &str, row_count: u64) -> FileMeta {
        FileMeta {
            path: path.to_string(),
            row_count,
            byte_size: 100,
            stats: None,
        }
    }

    fn shard(placements: Vec<Vec<FileMeta>>) -> ShardMeta {
        ShardMeta {
            shard_id: ShardId(102008),
            index: 0,
            hash_range: None,
            placements: placements
                .into_iter()
                .enumerate()
                .map(|(i, files)| PlacementMeta {
                    placement_id: PlacementId(i as i64 + 1),
                    group_id: GroupId(i as i32 + 1),
                    shard_state: 1,
                    files,
                })
                .collect(),
        }
    }

    fn config(min_files: usize) -> CompactionConfig {
        CompactionConfig {
            interval: Duration::ZERO,
            min_files,
            small_file_rows: 100,
            max_rows: 250,
        }
    }

    #[test]
    fn enough_small_files_are_merged_oldest_first_up_to_the_row_cap() {
        let files = vec![
            file("big", 1_000),
            file("a", 90),
            file("b", 90),
            file("c", 90),
            file("d", 90),
        ];
        let chosen = small_files(&shard(vec![files.clone()]), &config(3)).expect("compacted");
        let paths: Vec<&str> = chosen[0].iter().map(|f| f.path.as_str()).collect();
        // The big file stays; 250 rows at most: a, b (180) and not c (270).
        assert_eq!(paths, ["a", "b"]);
        assert!(
            small_files(&shard(vec![files]), &config(5)).is_none(),
            "too few"
        );
    }

    #[test]
    fn placements_that_disagree_are_left_alone() {
        let one = vec![file("a", 1), file("b", 1), file("c", 1)];
        let copy = vec![file("x", 1), file("y", 1), file("z", 1)];
        let other = vec![file("a", 1), file("b", 1)];
        // A reference table's copies: other paths, same rows.
        let chosen = small_files(&shard(vec![one.clone(), copy]), &config(2)).expect("compacted");
        assert_eq!(chosen[1][0].path, "x");
        assert!(small_files(&shard(vec![one, other]), &config(2)).is_none());
    }
}
