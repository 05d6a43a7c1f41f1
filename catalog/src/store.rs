//! [`Catalog`]: the durable store of cluster metadata, in SQLite.
//!
//! Every change runs in one SQLite transaction; when it commits, a fresh [`CatalogSnapshot`]
//! is built and published. Readers take the current snapshot and never see a half-applied
//! change, which is what makes a load visible all at once. `Catalog::open_in_memory` gives the
//! same store without a file, for tests and throwaway clusters.
//!
//! Write transactions are `BEGIN IMMEDIATE` and serialized by one connection; a change that
//! depends on what its statement read earlier re-checks it inside its transaction
//! (`commit_checks`), never on a snapshot.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use shardfusion_common::codec::encode_schema;
use shardfusion_common::ids::{GroupId, PlacementId, ShardId, TableId};

use crate::cleanup::{CleanupPolicy, record_in};
use crate::column_default_store::TableKeys;
use crate::column_stats_store::StatsCache;
use crate::commit_checks::{check_writable, table_schema};
use crate::error::{CatalogError, ConcurrentChange};
use crate::layout::{NewPlacement, NewShard};
use crate::model::{CatalogSnapshot, FileMeta, TableMeta};
use crate::snapshot_loader::load_snapshot;
use crate::write_fence::{PlacementFence, WriteFence, WriteFences};

type Result<T> = std::result::Result<T, CatalogError>;

/// Citus's default `citus.shard_count`.
pub const DEFAULT_SHARD_COUNT: usize = 32;
const FIRST_SHARD_ID: i64 = 102_008;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, next_value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    nodeid INTEGER PRIMARY KEY,
    groupid INTEGER NOT NULL UNIQUE,
    nodename TEXT NOT NULL,
    nodeport INTEGER NOT NULL,
    noderack TEXT NOT NULL DEFAULT 'default',
    isactive INTEGER NOT NULL DEFAULT 1,
    noderole TEXT NOT NULL DEFAULT 'primary',
    nodecluster TEXT NOT NULL DEFAULT 'default',
    shouldhaveshards INTEGER NOT NULL DEFAULT 1,
    worker_uuid TEXT UNIQUE,
    UNIQUE (nodename, nodeport)
);
CREATE TABLE IF NOT EXISTS colocations (
    colocationid INTEGER PRIMARY KEY,
    shardcount INTEGER NOT NULL,
    replicationfactor INTEGER NOT NULL,
    distributioncolumntype TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tables (
    table_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    schema BLOB NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('local', 'distributed', 'reference')),
    dist_column TEXT,
    colocationid INTEGER REFERENCES colocations (colocationid)
);
CREATE TABLE IF NOT EXISTS shards (
    shardid INTEGER PRIMARY KEY,
    table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
    shard_index INTEGER NOT NULL,
    minvalue INTEGER,
    maxvalue INTEGER
);
CREATE TABLE IF NOT EXISTS placements (
    placementid INTEGER PRIMARY KEY,
    shardid INTEGER NOT NULL REFERENCES shards (shardid) ON DELETE CASCADE,
    groupid INTEGER NOT NULL,
    shardstate INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS shard_files (
    placementid INTEGER NOT NULL REFERENCES placements (placementid) ON DELETE CASCADE,
    path TEXT NOT NULL,
    row_count INTEGER NOT NULL,
    byte_size INTEGER NOT NULL,
    PRIMARY KEY (placementid, path)
);
"#;

/// The durable catalog. Cheap to share behind an `Arc`.
pub struct Catalog {
    pub(crate) conn: Arc<Mutex<Connection>>,
    /// A branch's catalog: where its new ids come from (see [`next_id`]).
    pub(crate) id_source: Option<Arc<Mutex<Connection>>>,
    snapshot: RwLock<Arc<CatalogSnapshot>>,
    pub(crate) fences: Arc<WriteFences>,
    /// Decoded column statistics kept between snapshot loads (`column_stats_store`).
    pub(crate) stats_cache: StatsCache,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("version", &self.snapshot.read().version)
            .finish()
    }
}

impl Catalog {
    /// Opens (creating if needed) the catalog file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::init(conn)
    }

    /// A catalog that lives only in memory.
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        Self::init_at(conn, 1)
    }

    /// A catalog over `conn` whose first snapshot has `version`.
    pub(crate) fn init_at(conn: Connection, version: u64) -> Result<Self> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::cleanup::SCHEMA)?;
        conn.execute_batch(crate::node_store::SCHEMA)?;
        conn.execute_batch(crate::role_store::SCHEMA)?;
        conn.execute_batch(crate::column_stats_store::SCHEMA)?;
        conn.execute_batch(crate::storage_binding::SCHEMA)?;
        conn.execute_batch(crate::sequence_store::SCHEMA)?;
        conn.execute_batch(crate::column_default_store::SCHEMA)?;
        conn.execute_batch(crate::foreign_key_store::SCHEMA)?;
        conn.execute_batch(crate::unique_key_store::SCHEMA)?;
        conn.execute_batch(crate::check_constraint_store::SCHEMA)?;
        conn.execute_batch(crate::index_store::SCHEMA)?;
        conn.execute_batch(crate::view_store::SCHEMA)?;
        let stats_cache = StatsCache::default();
        let snapshot = load_snapshot(&conn, version, &stats_cache)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            id_source: None,
            snapshot: RwLock::new(Arc::new(snapshot)),
            fences: Arc::default(),
            stats_cache,
        })
    }

    /// The current committed state.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        Arc::clone(&self.snapshot.read())
    }

    /// Runs `change` in one transaction and publishes the new state if it commits. The
    /// snapshot is published before the lock is released, so whoever writes next has seen it.
    pub(crate) fn write<T>(&self, change: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = self.taking_ids(|| change(&tx))?;
        tx.commit()?;
        let version = self.snapshot.read().version + 1;
        let snapshot = load_snapshot(&conn, version, &self.stats_cache)?;
        *self.snapshot.write() = Arc::new(snapshot);
        Ok(out)
    }

    /// Changes the connection outside any transaction (`reset` replaces its content) and
    /// publishes the state it leaves.
    pub(crate) fn reload_with(
        &self,
        reset: impl FnOnce(&mut Connection) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.conn.lock();
        reset(&mut conn)?;
        let version = self.snapshot.read().version + 1;
        let snapshot = load_snapshot(&conn, version, &self.stats_cache)?;
        *self.snapshot.write() = Arc::new(snapshot);
        Ok(())
    }

    /// Runs `work` (which may take ids with [`next_id`]) taking a branch's ids from the
    /// catalog it branched.
    pub(crate) fn taking_ids<T>(&self, work: impl FnOnce() -> T) -> T {
        ID_SOURCE.with(|source| {
            let outer = source.replace(self.id_source.clone());
            let out = work();
            source.replace(outer);
            out
        })
    }

    /// Creates a local table on the coordinator (with column defaults and owned sequences:
    /// [`Self::create_table_with`]).
    pub fn create_table(&self, name: &str, schema: &Schema) -> Result<Arc<TableMeta>> {
        self.create_table_with(name, schema, &[], &[], &TableKeys::default())
    }

    /// The current metadata of `name`.
    pub fn table(&self, name: &str) -> Result<Arc<TableMeta>> {
        self.snapshot()
            .table(name)
            .cloned()
            .ok_or_else(|| CatalogError::TableNotFound {
                name: name.to_string(),
            })
    }

    /// Commits the files one statement wrote with `written` columns, all at once.
    ///
    /// Fails with [`CatalogError::Conflict`] if, since the statement read the table, a
    /// placement vanished (the table was dropped or distributed), the table is being
    /// distributed, or it gained a NOT NULL column the rows lack.
    pub fn commit_files(
        &self,
        table: &str,
        written: &Schema,
        files: &[(PlacementId, GroupId, FileMeta)],
    ) -> Result<()> {
        self.write(|tx| {
            check_writable(
                tx,
                &self.fences,
                table,
                written,
                files.iter().map(|(p, g, _)| (*p, *g)),
            )?;
            insert_files(tx, files.iter().map(|(p, _, f)| (p, f)))
        })
    }

    /// Replaces all of `name`'s files with `files` (written with `written` columns) in one
    /// transaction, with the checks of [`Catalog::commit_files`]. Returns the old files, now
    /// garbage.
    pub fn replace_files(
        &self,
        name: &str,
        written: &Schema,
        files: &[(PlacementId, GroupId, FileMeta)],
    ) -> Result<Vec<(GroupId, FileMeta)>> {
        self.write(|tx| {
            let owner = check_writable(
                tx,
                &self.fences,
                name,
                written,
                files.iter().map(|(p, g, _)| (*p, *g)),
            )?;
            let (id, old) = forget_files(tx, name)?;
            if owner.is_some_and(|owner| owner != id) {
                return Err(CatalogError::Conflict {
                    table: name.to_string(),
                    change: ConcurrentChange::ShardsReplaced,
                });
            }
            insert_files(tx, files.iter().map(|(p, _, f)| (p, f)))?;
            record_in(tx, &old, CleanupPolicy::DeferredOnSuccess)?;
            Ok(old)
        })
    }

    /// Holds off commits that would add files to `table` until the fence is dropped (see
    /// [`crate::write_fence`]). Every commit after this call sees the fence; every commit
    /// before it is in the snapshot already.
    pub fn fence_writes(&self, table: TableId) -> WriteFence {
        let _no_commit_in_flight = self.conn.lock();
        self.fences.raise(table)
    }

    /// Holds off commits into `placements` (a shard move's last round) until the fence is
    /// dropped; they are refused with [`ConcurrentChange::BeingMoved`] meanwhile.
    pub fn fence_placements(&self, placements: &[PlacementId]) -> PlacementFence {
        let _no_commit_in_flight = self.conn.lock();
        self.fences.raise_placements(placements)
    }

    /// Forgets every file of `name`. Returns the files, now garbage.
    pub fn truncate_table(&self, name: &str) -> Result<Vec<(GroupId, FileMeta)>> {
        self.write(|tx| {
            let (_, files) = forget_files(tx, name)?;
            record_in(tx, &files, CleanupPolicy::DeferredOnSuccess)?;
            Ok(files)
        })
    }

    /// Drops `name`. Returns its files, now garbage, or `None` if it did not exist and
    /// `if_exists` was given.
    pub fn drop_table(
        &self,
        name: &str,
        if_exists: bool,
    ) -> Result<Option<Vec<(GroupId, FileMeta)>>> {
        self.write(|tx| {
            let Some(id) = table_id_of(tx, name)? else {
                if if_exists {
                    return Ok(None);
                }
                return Err(CatalogError::TableNotFound {
                    name: name.to_string(),
                });
            };
            drop_in(tx, id).map(Some)
        })
    }

    /// Drops the table with id `id` if it still exists (a statement removing the table it
    /// created, which may have been dropped and its name reused meanwhile). Returns its files.
    pub fn drop_table_id(&self, id: TableId) -> Result<Option<Vec<(GroupId, FileMeta)>>> {
        self.write(|tx| {
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT table_id FROM tables WHERE table_id = ?1",
                    params![id.0],
                    |r| r.get(0),
                )
                .optional()?;
            match exists {
                Some(_) => drop_in(tx, id).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Adds a column; existing files read it as NULL, so a NOT NULL column can only be added
    /// while the table has no rows. Decided on the table as it is inside the transaction.
    /// Renames table `name` to `new_name` (`ALTER TABLE ... RENAME TO`). Only the name
    /// changes: shards, files and grants belong to the table's id, so statements already
    /// writing to it commit as they would have.
    pub fn rename_table(&self, name: &str, new_name: &str) -> Result<()> {
        self.write(|tx| {
            let id = table_id_of(tx, name)?.ok_or_else(|| CatalogError::TableNotFound {
                name: name.to_string(),
            })?;
            if table_id_of(tx, new_name)?.is_some() {
                return Err(CatalogError::TableExists {
                    name: new_name.to_string(),
                });
            }
            tx.execute(
                "UPDATE tables SET name = ?1 WHERE table_id = ?2",
                params![new_name, id.0],
            )?;
            Ok(())
        })
    }

    pub fn add_column(&self, name: &str, field: Field) -> Result<()> {
        self.write(|tx| {
            let id = table_id_of(tx, name)?.ok_or_else(|| CatalogError::TableNotFound {
                name: name.to_string(),
            })?;
            let schema = table_schema(tx, id, name)?;
            if schema.column_with_name(field.name()).is_some() {
                return Err(CatalogError::ColumnExists {
                    table: name.to_string(),
                    column: field.name().clone(),
                });
            }
            if !field.is_nullable() && rows_of_table(tx, id)? > 0 {
                return Err(CatalogError::NotNullOnRows {
                    table: name.to_string(),
                    column: field.name().clone(),
                });
            }
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(field);
            let bytes = encode_schema(&Schema::new(fields)).map_err(|e| CatalogError::Corrupt {
                table: name.to_string(),
                reason: e.to_string(),
            })?;
            tx.execute(
                "UPDATE tables SET schema = ?1 WHERE table_id = ?2",
                params![bytes, id.0],
            )?;
            Ok(())
        })
    }
}

/// Deletes table `id` (shards, placements and files cascade) and any colocation group left
/// without a table; returns the table's files, now garbage.
fn drop_in(tx: &Transaction<'_>, id: TableId) -> Result<Vec<(GroupId, FileMeta)>> {
    crate::sequence_store::check_owned_sequences_unused(tx, id)?;
    crate::foreign_key_store::check_unreferenced(tx, id)?;
    let files = files_of_table(tx, id)?;
    record_in(tx, &files, CleanupPolicy::DeferredOnSuccess)?;
    tx.execute("DELETE FROM tables WHERE table_id = ?1", params![id.0])?;
    // A colocation group outlives its tables in Citus only while referenced.
    tx.execute(
        "DELETE FROM colocations WHERE colocationid NOT IN \
         (SELECT colocationid FROM tables WHERE colocationid IS NOT NULL)",
        [],
    )?;
    Ok(files)
}

/// Rows in the committed files of table `id` (every copy of a replicated shard counts).
fn rows_of_table(tx: &Transaction<'_>, id: TableId) -> Result<i64> {
    Ok(tx.query_row(
        "SELECT coalesce(sum(f.row_count), 0) FROM shard_files f \
         JOIN placements p USING (placementid) JOIN shards s USING (shardid) \
         WHERE s.table_id = ?1",
        params![id.0],
        |r| r.get(0),
    )?)
}

thread_local! {
    /// Set while a branch's change runs: its ids come from the catalog it branched.
    static ID_SOURCE: std::cell::RefCell<Option<Arc<Mutex<Connection>>>> =
        const { std::cell::RefCell::new(None) };
}

/// The next id of counter `name` (starting at `first`). In a branch, ids are taken from the
/// catalog it branched, at once and for good (as PostgreSQL's sequences are), so that what
/// the branch creates never collides with what others create meanwhile.
pub(crate) fn next_id(tx: &Transaction<'_>, name: &str, first: i64) -> Result<i64> {
    if let Some(source) = ID_SOURCE.with(|s| s.borrow().clone()) {
        let mut conn = source.lock();
        let source_tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = take_id(&source_tx, name, first)?;
        source_tx.commit()?;
        // The branch's own counter follows, so that its rows read consistently.
        tx.execute(
            "INSERT INTO sequences (name, next_value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET next_value = excluded.next_value",
            params![name, id + 1],
        )?;
        return Ok(id);
    }
    take_id(tx, name, first)
}

fn take_id(tx: &Transaction<'_>, name: &str, first: i64) -> Result<i64> {
    let current: Option<i64> = tx
        .query_row(
            "SELECT next_value FROM sequences WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    let value = current.unwrap_or(first);
    tx.execute(
        "INSERT INTO sequences (name, next_value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET next_value = excluded.next_value",
        params![name, value + 1],
    )?;
    Ok(value)
}

/// The id of table `name`, which must exist.
pub(crate) fn existing_table_id(tx: &Transaction<'_>, name: &str) -> Result<TableId> {
    table_id_of(tx, name)?.ok_or_else(|| CatalogError::TableNotFound {
        name: name.to_string(),
    })
}

pub(crate) fn table_id_of(tx: &Transaction<'_>, name: &str) -> Result<Option<TableId>> {
    Ok(tx
        .query_row(
            "SELECT table_id FROM tables WHERE name = ?1",
            params![name],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map(TableId))
}

/// Removes every committed file of `name` from the catalog; returns the table and the files.
fn forget_files(tx: &Transaction<'_>, name: &str) -> Result<(TableId, Vec<(GroupId, FileMeta)>)> {
    let id = table_id_of(tx, name)?.ok_or_else(|| CatalogError::TableNotFound {
        name: name.to_string(),
    })?;
    let files = files_of_table(tx, id)?;
    tx.execute(
        "DELETE FROM shard_files WHERE placementid IN (SELECT placementid FROM placements \
         JOIN shards USING (shardid) WHERE table_id = ?1)",
        params![id.0],
    )?;
    Ok((id, files))
}

pub(crate) fn insert_local_shard(tx: &Transaction<'_>, table_id: i64) -> Result<()> {
    let shard_id = next_id(tx, "shardid", FIRST_SHARD_ID)?;
    let placement_id = next_id(tx, "placementid", 1)?;
    tx.execute(
        "INSERT INTO shards (shardid, table_id, shard_index) VALUES (?1, ?2, 0)",
        params![shard_id, table_id],
    )?;
    tx.execute(
        "INSERT INTO placements (placementid, shardid, groupid) VALUES (?1, ?2, ?3)",
        params![placement_id, shard_id, GroupId::COORDINATOR.0],
    )?;
    Ok(())
}

pub(crate) fn reserve_shards(
    tx: &Transaction<'_>,
    groups: &[Vec<GroupId>],
    ranges: &[Option<(i32, i32)>],
) -> Result<Vec<NewShard>> {
    let mut shards = Vec::with_capacity(groups.len());
    for (index, shard_groups) in groups.iter().enumerate() {
        let shard_id = ShardId(next_id(tx, "shardid", FIRST_SHARD_ID)?);
        let mut placements = Vec::with_capacity(shard_groups.len());
        for group in shard_groups {
            placements.push(NewPlacement {
                placement_id: PlacementId(next_id(tx, "placementid", 1)?),
                group_id: *group,
            });
        }
        shards.push(NewShard {
            shard_id,
            index,
            hash_range: ranges.get(index).copied().flatten(),
            placements,
        });
    }
    Ok(shards)
}

/// Whether every node group the placements of `shards` are planned on still has its node.
pub(crate) fn nodes_exist(tx: &Transaction<'_>, shards: &[NewShard]) -> Result<bool> {
    for group in shards
        .iter()
        .flat_map(|s| &s.placements)
        .map(|p| p.group_id)
    {
        let known: Option<i32> = tx
            .query_row(
                "SELECT groupid FROM nodes WHERE groupid = ?1",
                params![group.0],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Inserts planned shards of `table` with their placements.
pub(crate) fn insert_shards(
    tx: &Transaction<'_>,
    table: TableId,
    shards: &[NewShard],
) -> Result<()> {
    for shard in shards {
        tx.execute(
            "INSERT INTO shards (shardid, table_id, shard_index, minvalue, maxvalue) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                shard.shard_id.0,
                table.0,
                shard.index as i64,
                shard.hash_range.map(|r| r.0),
                shard.hash_range.map(|r| r.1)
            ],
        )?;
        for p in &shard.placements {
            tx.execute(
                "INSERT INTO placements (placementid, shardid, groupid) VALUES (?1, ?2, ?3)",
                params![p.placement_id.0, shard.shard_id.0, p.group_id.0],
            )?;
        }
    }
    Ok(())
}

pub(crate) fn insert_files<'a>(
    tx: &Transaction<'_>,
    files: impl IntoIterator<Item = (&'a PlacementId, &'a FileMeta)>,
) -> Result<()> {
    let mut stmt = tx.prepare(
        "INSERT INTO shard_files (placementid, path, row_count, byte_size) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (placement, file) in files {
        stmt.execute(params![
            placement.0,
            file.path,
            file.row_count as i64,
            file.byte_size as i64
        ])?;
        if let Some(stats) = &file.stats {
            crate::column_stats_store::insert_stats(tx, *placement, &file.path, stats)?;
        }
    }
    Ok(())
}

pub(crate) fn files_of_table(
    tx: &Transaction<'_>,
    table: TableId,
) -> Result<Vec<(GroupId, FileMeta)>> {
    let mut stmt = tx.prepare(
        "SELECT p.groupid, f.path, f.row_count, f.byte_size FROM shard_files f \
         JOIN placements p USING (placementid) JOIN shards s USING (shardid) \
         WHERE s.table_id = ?1",
    )?;
    let rows = stmt.query_map(params![table.0], file_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// The committed files of shard `shard`, with the node group of the placement listing each.
pub(crate) fn files_of_shard(
    tx: &Transaction<'_>,
    shard: ShardId,
) -> Result<Vec<(GroupId, FileMeta)>> {
    let mut stmt = tx.prepare(
        "SELECT p.groupid, f.path, f.row_count, f.byte_size FROM shard_files f \
         JOIN placements p USING (placementid) WHERE p.shardid = ?1",
    )?;
    let rows = stmt.query_map(params![shard.0], file_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// A `(groupid, path, row_count, byte_size)` row.
fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(GroupId, FileMeta)> {
    Ok((
        GroupId(r.get(0)?),
        FileMeta {
            path: r.get(1)?,
            row_count: r.get::<_, i64>(2)? as u64,
            byte_size: r.get::<_, i64>(3)? as u64,
            stats: None,
        },
    ))
}

/// Rows of `(table_id, item)` (read in the order wanted) grouped by table id.
pub(crate) fn by_table<T>(
    rows: impl Iterator<Item = rusqlite::Result<(i64, T)>>,
) -> Result<std::collections::BTreeMap<i64, Vec<T>>> {
    let mut grouped: std::collections::BTreeMap<i64, Vec<T>> = std::collections::BTreeMap::new();
    for row in rows {
        let (table, item) = row?;
        grouped.entry(table).or_default().push(item);
    }
    Ok(grouped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{ColocateWith, DistributionRequest};
    use datafusion::arrow::datatypes::DataType;
    use shardfusion_common::ids::NodeId;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ])
    }

    #[test]
    fn distribute_and_colocate() -> Result<()> {
        let catalog = Catalog::open_in_memory()?;
        catalog.add_node("localhost", 9001, None)?;
        catalog.add_node("localhost", 9002, None)?;
        catalog.create_table("a", &schema())?;
        catalog.create_table("b", &schema())?;
        assert!(matches!(
            catalog.create_table("a", &schema()),
            Err(CatalogError::TableExists { .. })
        ));
        let request = DistributionRequest::Distributed {
            column: "id".into(),
            shard_count: Some(4),
            colocate_with: ColocateWith::Default,
        };
        let plan = catalog.plan_distribution("a", &request)?;
        catalog.commit_distribution(&plan, &Default::default(), &[])?;
        let plan_b = catalog.plan_distribution("b", &request)?;
        catalog.commit_distribution(&plan_b, &Default::default(), &[])?;
        let (a, b) = (catalog.table("a")?, catalog.table("b")?);
        assert_eq!(a.shards.len(), 4);
        assert_eq!(a.kind.colocation_id(), b.kind.colocation_id());
        for (sa, sb) in a.shards.iter().zip(&b.shards) {
            assert_eq!(sa.hash_range, sb.hash_range);
            assert_eq!(sa.placements[0].group_id, sb.placements[0].group_id);
        }
        assert_eq!(a.shards[0].shard_id, ShardId(102_010));
        Ok(())
    }

    #[test]
    fn survives_reopen() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|_| CatalogError::NoWorkers)?;
        let path = dir.path().join("catalog.db");
        {
            let catalog = Catalog::open(&path)?;
            catalog.add_node("localhost", 9001, Some("w1"))?;
            catalog.create_table("a", &schema())?;
        }
        let catalog = Catalog::open(&path)?;
        assert!(catalog.table("a").is_ok());
        let node = catalog.add_node("localhost", 9005, Some("w1"))?;
        assert_eq!(node.node_id, NodeId(1));
        assert_eq!(node.node_port, 9005);
        Ok(())
    }
}
