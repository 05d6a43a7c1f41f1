//! Primary keys and unique constraints, enforced on every write that adds rows: `INSERT`,
//! `COPY`, bulk ingest, `UPDATE`, and `INSERT ... SELECT`.
//!
//! A write first lands in new shard files; before they commit, the shards that gain files
//! are read as they would be with them (the committed files plus the new ones, the replaced
//! ones left out), and each key is looked for twice. The scan runs on the workers like any
//! query, and only over keys within the range the new files hold in the key's first column
//! (their column statistics), so the files' page indexes and row-group statistics skip the
//! rest. On a distributed table every key contains the distribution column
//! ([`shardfusion_catalog::unique_key_store`]), so equal keys always meet in one shard.
//!
//! Concurrent writers of one table could each pass the check with the same new key, so the
//! check and the commit run under the table's key lock ([`UniqueKeyLocks`]): writes to a
//! table with keys commit one at a time, each checked against the latest committed state. In
//! a multi-statement transaction a write is checked against the transaction's own view when
//! it runs (so the error comes from that statement), and again at `COMMIT` under the lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::Column;
use datafusion::functions_aggregate::count::count;
use datafusion::logical_expr::{Expr, and, col, lit};
use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use shardfusion_catalog::{CatalogSnapshot, FileChange, FileMeta};
use shardfusion_common::ids::{GroupId, PlacementId, TableId};
use tokio::sync::OwnedMutexGuard;

use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};
use crate::session::statement_context::session_for;
use crate::session::table_provider::ShardedTableProvider;

/// One lock per table with keys, held from a write's check to its commit.
#[derive(Debug, Default)]
pub struct UniqueKeyLocks {
    tables: Mutex<HashMap<TableId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while a checked write commits.
pub type KeyLock = OwnedMutexGuard<()>;

impl UniqueKeyLocks {
    /// Waits for table `table`'s key lock.
    pub async fn lock(&self, table: TableId) -> KeyLock {
        let lock = Arc::clone(self.tables.lock().entry(table).or_default());
        lock.lock_owned().await
    }
}

/// Checks `change` against the keys of its table as of `base` (the latest committed state,
/// or a transaction's view). `Ok` if the table has no keys or the change adds no rows.
pub async fn check_change(
    cluster: &Arc<Cluster>,
    base: &CatalogSnapshot,
    change: &FileChange,
) -> Result<()> {
    let Some(table) = base.table(&change.table) else {
        return Ok(());
    };
    if table.unique_keys.is_empty() || change.added.is_empty() {
        return Ok(());
    }
    // A file it replaces that another statement replaced or removed first: the rows it
    // rewrote are stale (a concurrent UPDATE of the same row). That is the retryable conflict
    // the commit would report, not a key violation against the other statement's rows.
    let listed: HashSet<&str> = (table.shards.iter())
        .flat_map(|s| &s.placements)
        .flat_map(|p| &p.files)
        .map(|f| f.path.as_str())
        .collect();
    if (change.removed.iter()).any(|(_, _, path)| !listed.contains(path.as_str())) {
        return Err(shardfusion_catalog::CatalogError::Conflict {
            table: change.table.clone(),
            change: shardfusion_catalog::ConcurrentChange::RowsRemoved,
        }
        .into());
    }
    let gaining: HashSet<PlacementId> = change.added.iter().map(|(p, _, _)| *p).collect();
    let mut changed = table.with_change(change);
    changed.shards.retain(|s| {
        s.placements
            .iter()
            .any(|p| gaining.contains(&p.placement_id))
    });
    let changed = Arc::new(changed);
    let snapshot = Arc::new(base.with_file_changes(std::slice::from_ref(change)));
    let ctx = session_for(cluster, Arc::clone(&snapshot))?;
    let added: Vec<&FileMeta> = change.added.iter().map(|(_, _, f)| f).collect();
    for key in &table.unique_keys {
        let provider = ShardedTableProvider::new(
            Arc::clone(cluster),
            Arc::clone(&snapshot),
            Arc::clone(&changed),
        );
        let columns: Vec<Expr> = (key.columns.iter())
            .map(|c| Expr::Column(Column::from_name(c)))
            .collect();
        let mut filter = (columns.iter().map(|c| c.clone().is_not_null()))
            .reduce(and)
            .unwrap_or(lit(true));
        if let Some((low, high)) = bounds(&added, &key.columns[0]) {
            filter = and(filter, columns[0].clone().between(lit(low), lit(high)));
        }
        let repeated = ctx
            .read_table(Arc::new(provider))?
            .filter(filter)?
            .aggregate(columns, vec![count(lit(1)).alias("shardfusion_copies")])?
            .filter(col("shardfusion_copies").gt(lit(1_i64)))?
            .limit(0, Some(1))?
            .collect()
            .await?;
        if let Some(batch) = repeated.iter().find(|b| b.num_rows() > 0) {
            let values: Vec<String> = (0..key.columns.len())
                .map(|i| {
                    let value =
                        datafusion::arrow::util::display::array_value_to_string(batch.column(i), 0)
                            .unwrap_or_default();
                    shown(value)
                })
                .collect();
            return Err(SchedulerError::UniqueViolation {
                table: table.name.clone(),
                constraint: key.name.clone(),
                key: format!("({})=({})", key.columns.join(", "), values.join(", ")),
            });
        }
    }
    Ok(())
}

/// Takes table `table`'s key lock (if it has keys) and checks `change` against the latest
/// committed state; the write commits while the lock is held.
pub async fn lock_and_check(
    cluster: &Arc<Cluster>,
    table: &str,
    change: &FileChange,
) -> Result<Option<KeyLock>> {
    let Some(meta) = cluster.catalog.snapshot().table(table).cloned() else {
        return Ok(None);
    };
    if meta.unique_keys.is_empty() || change.added.is_empty() {
        return Ok(None);
    }
    let lock = cluster.unique_keys.lock(meta.table_id).await;
    check_change(cluster, &cluster.catalog.snapshot(), change).await?;
    Ok(Some(lock))
}

/// Takes the key locks of every table of `changes` that has keys (in table id order, so two
/// transactions never wait for each other) and checks each change against the latest
/// committed state.
pub async fn lock_and_check_all(
    cluster: &Arc<Cluster>,
    changes: &[FileChange],
) -> Result<Vec<KeyLock>> {
    let snapshot = cluster.catalog.snapshot();
    let mut keyed: BTreeMap<TableId, Vec<&FileChange>> = BTreeMap::new();
    for change in changes {
        if let Some(meta) = snapshot.table(&change.table)
            && !meta.unique_keys.is_empty()
            && !change.added.is_empty()
        {
            keyed.entry(meta.table_id).or_default().push(change);
        }
    }
    let mut locks = Vec::with_capacity(keyed.len());
    for table in keyed.keys() {
        locks.push(cluster.unique_keys.lock(*table).await);
    }
    let latest = cluster.catalog.snapshot();
    for change in keyed.values().flatten() {
        check_change(cluster, &latest, change).await?;
    }
    Ok(locks)
}

/// [`lock_and_check`] for files a writer adds to `table` (written with `schema`), replacing
/// all of the table's files if `replacing`.
pub async fn lock_and_check_added(
    cluster: &Arc<Cluster>,
    table: &str,
    schema: &Schema,
    added: Vec<(PlacementId, GroupId, FileMeta)>,
    replacing: bool,
) -> Result<Option<KeyLock>> {
    let removed = match (replacing, cluster.catalog.snapshot().table(table)) {
        (true, Some(meta)) => (meta.shards.iter())
            .flat_map(|s| s.placements.iter())
            .flat_map(|p| (p.files.iter()).map(|f| (p.placement_id, p.group_id, f.path.clone())))
            .collect(),
        _ => Vec::new(),
    };
    let change = FileChange {
        table: table.to_string(),
        written: schema.clone(),
        removed,
        added,
    };
    lock_and_check(cluster, table, &change).await
}

/// The smallest and largest value of `column` in `files`, if every file knows them.
fn bounds(files: &[&FileMeta], column: &str) -> Option<(ScalarValue, ScalarValue)> {
    let mut low: Option<ScalarValue> = None;
    let mut high: Option<ScalarValue> = None;
    for file in files {
        let stats = file.stats.as_ref()?.column(column)?;
        let (min, max) = (stats.min_value()?, stats.max_value()?);
        if low
            .as_ref()
            .is_none_or(|l| min.partial_cmp(l) == Some(std::cmp::Ordering::Less))
        {
            low = Some(min.clone());
        }
        if high
            .as_ref()
            .is_none_or(|h| max.partial_cmp(h) == Some(std::cmp::Ordering::Greater))
        {
            high = Some(max.clone());
        }
    }
    low.zip(high)
}

/// A key value as an error message shows it: at most 100 characters.
fn shown(value: String) -> String {
    match value.char_indices().nth(100) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value,
    }
}
