//! [`Catalog`]: the durable store of cluster metadata, in SQLite.
//!
//! Every change runs in one SQLite transaction; when it commits, a fresh [`CatalogSnapshot`]
//! is built and published. Readers take the current snapshot and never see a half-applied
//! change, which is what makes a load visible all at once. `Catalog::open_in_memory` gives the
//! same store without a file, for tests and throwaway clusters.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use shardfusion_common::codec::encode_schema;
use shardfusion_common::hashing::is_distributable;
use shardfusion_common::ids::{ColocationId, GroupId, NodeId, PlacementId, ShardId, TableId};

use crate::error::CatalogError;
use crate::layout::{
    self, ColocateWith, DistributionPlan, DistributionRequest, NewPlacement, NewShard,
};
use crate::model::{CatalogSnapshot, FileMeta, Node, TableKind, TableMeta};
use crate::snapshot_loader::load_snapshot;

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
    conn: Mutex<Connection>,
    snapshot: RwLock<Arc<CatalogSnapshot>>,
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
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        let snapshot = load_snapshot(&conn, 1)?;
        Ok(Self {
            conn: Mutex::new(conn),
            snapshot: RwLock::new(Arc::new(snapshot)),
        })
    }

    /// The current committed state.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        Arc::clone(&self.snapshot.read())
    }

    /// Runs `change` in one transaction and publishes the new state if it commits.
    fn write<T>(&self, change: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let out = change(&tx)?;
        tx.commit()?;
        let version = self.snapshot.read().version + 1;
        let snapshot = load_snapshot(&conn, version)?;
        *self.snapshot.write() = Arc::new(snapshot);
        Ok(out)
    }

    /// Adds a worker (`citus_add_node`), or returns it if already known.
    ///
    /// A worker that registers with a `worker_uuid` it used before keeps its node id and
    /// shards even if its host or port changed.
    pub fn add_node(&self, name: &str, port: u16, worker_uuid: Option<&str>) -> Result<Node> {
        let node_id = self.write(|tx| {
            if let Some(uuid) = worker_uuid {
                let existing: Option<i32> = tx
                    .query_row(
                        "SELECT nodeid FROM nodes WHERE worker_uuid = ?1",
                        params![uuid],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = existing {
                    tx.execute(
                        "UPDATE nodes SET nodename = ?1, nodeport = ?2, isactive = 1 WHERE nodeid = ?3",
                        params![name, port, id],
                    )?;
                    return Ok(id);
                }
            }
            let existing: Option<i32> = tx
                .query_row(
                    "SELECT nodeid FROM nodes WHERE nodename = ?1 AND nodeport = ?2",
                    params![name, port],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = existing {
                if let Some(uuid) = worker_uuid {
                    tx.execute(
                        "UPDATE nodes SET worker_uuid = ?1, isactive = 1 WHERE nodeid = ?2",
                        params![uuid, id],
                    )?;
                }
                return Ok(id);
            }
            let id = next_id(tx, "nodeid", 1)? as i32;
            tx.execute(
                "INSERT INTO nodes (nodeid, groupid, nodename, nodeport, worker_uuid) \
                 VALUES (?1, ?1, ?2, ?3, ?4)",
                params![id, name, port, worker_uuid],
            )?;
            Ok(id)
        })?;
        self.snapshot()
            .node(NodeId(node_id))
            .cloned()
            .ok_or(CatalogError::NoWorkers)
    }

    /// Creates a local table on the coordinator.
    pub fn create_table(&self, name: &str, schema: &Schema) -> Result<Arc<TableMeta>> {
        let schema_bytes = encode_schema(schema).map_err(|e| CatalogError::Corrupt {
            table: name.to_string(),
            reason: e.to_string(),
        })?;
        self.write(|tx| {
            if table_id_of(tx, name)?.is_some() {
                return Err(CatalogError::TableExists {
                    name: name.to_string(),
                });
            }
            let table_id = next_id(tx, "table_id", 1)?;
            tx.execute(
                "INSERT INTO tables (table_id, name, schema, kind) VALUES (?1, ?2, ?3, 'local')",
                params![table_id, name, schema_bytes],
            )?;
            insert_local_shard(tx, table_id)?;
            Ok(())
        })?;
        self.table(name)
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

    /// Decides and reserves the shards and placements of a table about to be distributed.
    /// Nothing becomes visible until [`Catalog::commit_distribution`].
    pub fn plan_distribution(
        &self,
        name: &str,
        request: &DistributionRequest,
    ) -> Result<DistributionPlan> {
        let snapshot = self.snapshot();
        let table = snapshot
            .table(name)
            .ok_or_else(|| CatalogError::TableNotFound {
                name: name.to_string(),
            })?;
        if table.kind != TableKind::Local {
            return Err(CatalogError::AlreadyDistributed {
                name: name.to_string(),
            });
        }
        let workers: Vec<GroupId> = snapshot
            .active_workers()
            .iter()
            .map(|n| n.group_id)
            .collect();
        if workers.is_empty() {
            return Err(CatalogError::NoWorkers);
        }
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let plan = match request {
            DistributionRequest::Reference => {
                let existing = snapshot
                    .colocations
                    .values()
                    .find(|c| c.shard_count == 1 && c.distribution_column_type.is_empty())
                    .cloned();
                let (colocation, new_colocation) = match existing {
                    Some(c) => (c.colocation_id, None),
                    None => {
                        let id = ColocationId(next_id(&tx, "colocationid", 1)? as i32);
                        (id, Some(layout::new_colocation(id, 1, String::new())))
                    }
                };
                let groups = vec![workers.clone()];
                let shards = reserve_shards(&tx, &groups, &[None])?;
                DistributionPlan {
                    table_id: table.table_id,
                    table_name: name.to_string(),
                    kind: TableKind::Reference {
                        colocation_id: colocation,
                    },
                    new_colocation,
                    shards,
                }
            }
            DistributionRequest::Distributed {
                column,
                shard_count,
                colocate_with,
            } => {
                let field = table.schema.field_with_name(column).map_err(|_| {
                    CatalogError::ColumnNotFound {
                        table: name.to_string(),
                        column: column.clone(),
                    }
                })?;
                if !is_distributable(field.data_type()) {
                    return Err(CatalogError::BadDistributionColumn {
                        table: name.to_string(),
                        column: column.clone(),
                        reason: format!(
                            "type {} cannot be hashed; use an integer, text or date column",
                            field.data_type()
                        ),
                    });
                }
                let type_name = field.data_type().to_string();
                if let Some(n) = shard_count
                    && (*n < 1 || *n > 64_000)
                {
                    return Err(CatalogError::BadShardCount { given: *n as i64 });
                }
                let target = match colocate_with {
                    ColocateWith::None => None,
                    ColocateWith::Default => {
                        let count = shard_count.unwrap_or(DEFAULT_SHARD_COUNT) as i32;
                        snapshot
                            .colocations
                            .values()
                            .find(|c| {
                                c.shard_count == count
                                    && c.distribution_column_type == type_name
                                    && c.replication_factor == 1
                            })
                            .cloned()
                    }
                    ColocateWith::Table(other) => {
                        let other_table =
                            snapshot
                                .table(other)
                                .ok_or_else(|| CatalogError::TableNotFound {
                                    name: other.clone(),
                                })?;
                        let bad = |reason: &str| CatalogError::BadColocation {
                            table: name.to_string(),
                            other: other.clone(),
                            reason: reason.to_string(),
                        };
                        let TableKind::Distributed { colocation_id, .. } = other_table.kind else {
                            return Err(bad("it is not a distributed table"));
                        };
                        let c = snapshot
                            .colocations
                            .get(&colocation_id)
                            .cloned()
                            .ok_or(CatalogError::ColocationNotFound { id: colocation_id })?;
                        if c.distribution_column_type != type_name {
                            return Err(bad(&format!(
                                "distribution column types differ ({} vs {type_name})",
                                c.distribution_column_type
                            )));
                        }
                        if let Some(n) = shard_count
                            && *n as i32 != c.shard_count
                        {
                            return Err(bad(&format!(
                                "shard counts differ ({} vs {n})",
                                c.shard_count
                            )));
                        }
                        Some(c)
                    }
                };
                let (colocation_id, count, new_colocation, mirror) = match target {
                    Some(c) => {
                        let mirror = snapshot
                            .tables
                            .values()
                            .find(|t| t.kind.colocation_id() == Some(c.colocation_id))
                            .map(|t| {
                                t.shards
                                    .iter()
                                    .map(|s| s.placements.iter().map(|p| p.group_id).collect())
                                    .collect::<Vec<Vec<GroupId>>>()
                            });
                        (c.colocation_id, c.shard_count as usize, None, mirror)
                    }
                    None => {
                        let count = shard_count.unwrap_or(DEFAULT_SHARD_COUNT);
                        let id = ColocationId(next_id(&tx, "colocationid", 1)? as i32);
                        (
                            id,
                            count,
                            Some(layout::new_colocation(id, count, type_name)),
                            None,
                        )
                    }
                };
                let groups = layout::assign_groups(count, &workers, mirror.as_deref());
                let shards = reserve_shards(&tx, &groups, &layout::ranges(count))?;
                DistributionPlan {
                    table_id: table.table_id,
                    table_name: name.to_string(),
                    kind: TableKind::Distributed {
                        column: column.clone(),
                        colocation_id,
                    },
                    new_colocation,
                    shards,
                }
            }
        };
        tx.commit()?;
        Ok(plan)
    }

    /// Makes a planned distribution real, with the files that hold the table's moved rows.
    /// Returns the table's former local files, now garbage.
    pub fn commit_distribution(
        &self,
        plan: &DistributionPlan,
        files: &[(PlacementId, FileMeta)],
    ) -> Result<Vec<(GroupId, FileMeta)>> {
        self.write(|tx| {
            let kind: Option<String> = tx
                .query_row(
                    "SELECT kind FROM tables WHERE table_id = ?1",
                    params![plan.table_id.0],
                    |r| r.get(0),
                )
                .optional()?;
            if kind.as_deref() != Some("local") {
                return Err(CatalogError::Conflict {
                    table: plan.table_name.clone(),
                });
            }
            let old_files = files_of_table(tx, plan.table_id)?;
            tx.execute(
                "DELETE FROM shards WHERE table_id = ?1",
                params![plan.table_id.0],
            )?;
            if let Some(c) = &plan.new_colocation {
                tx.execute(
                    "INSERT INTO colocations (colocationid, shardcount, replicationfactor, \
                     distributioncolumntype) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        c.colocation_id.0,
                        c.shard_count,
                        c.replication_factor,
                        c.distribution_column_type
                    ],
                )?;
            }
            let (kind, column, colocation) = match &plan.kind {
                TableKind::Local => ("local", None, None),
                TableKind::Distributed {
                    column,
                    colocation_id,
                } => ("distributed", Some(column.clone()), Some(colocation_id.0)),
                TableKind::Reference { colocation_id } => {
                    ("reference", None, Some(colocation_id.0))
                }
            };
            tx.execute(
                "UPDATE tables SET kind = ?1, dist_column = ?2, colocationid = ?3 WHERE table_id = ?4",
                params![kind, column, colocation, plan.table_id.0],
            )?;
            for shard in &plan.shards {
                tx.execute(
                    "INSERT INTO shards (shardid, table_id, shard_index, minvalue, maxvalue) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        shard.shard_id.0,
                        plan.table_id.0,
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
            insert_files(tx, files)?;
            Ok(old_files)
        })
    }

    /// Commits the files one statement wrote, all at once.
    ///
    /// Fails with [`CatalogError::Conflict`] if a placement vanished meanwhile (the table was
    /// dropped, truncated into a new layout, or distributed).
    pub fn commit_files(&self, table: &str, files: &[(PlacementId, FileMeta)]) -> Result<()> {
        self.write(|tx| {
            for (placement, _) in files {
                let exists: Option<i64> = tx
                    .query_row(
                        "SELECT placementid FROM placements WHERE placementid = ?1",
                        params![placement.0],
                        |r| r.get(0),
                    )
                    .optional()?;
                if exists.is_none() {
                    return Err(CatalogError::Conflict {
                        table: table.to_string(),
                    });
                }
            }
            insert_files(tx, files)
        })
    }

    /// Replaces all of `name`'s files with `files` in one transaction. Returns the old files,
    /// now garbage.
    pub fn replace_files(
        &self,
        name: &str,
        files: &[(PlacementId, FileMeta)],
    ) -> Result<Vec<(GroupId, FileMeta)>> {
        self.write(|tx| {
            let (id, old) = forget_files(tx, name)?;
            for (placement, _) in files {
                let owner: Option<i64> = tx
                    .query_row(
                        "SELECT s.table_id FROM placements p JOIN shards s USING (shardid) \
                         WHERE p.placementid = ?1",
                        params![placement.0],
                        |r| r.get(0),
                    )
                    .optional()?;
                if owner != Some(id.0) {
                    return Err(CatalogError::Conflict {
                        table: name.to_string(),
                    });
                }
            }
            insert_files(tx, files)?;
            Ok(old)
        })
    }

    /// Forgets every file of `name`. Returns the files, now garbage.
    pub fn truncate_table(&self, name: &str) -> Result<Vec<(GroupId, FileMeta)>> {
        self.write(|tx| Ok(forget_files(tx, name)?.1))
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
            let files = files_of_table(tx, id)?;
            tx.execute("DELETE FROM tables WHERE table_id = ?1", params![id.0])?;
            // A colocation group outlives its tables in Citus only while referenced.
            tx.execute(
                "DELETE FROM colocations WHERE colocationid NOT IN \
                 (SELECT colocationid FROM tables WHERE colocationid IS NOT NULL)",
                [],
            )?;
            Ok(Some(files))
        })
    }

    /// Adds a nullable column; existing files read it as NULL.
    pub fn add_column(&self, name: &str, field: Field) -> Result<()> {
        let table = self.table(name)?;
        if table.schema.column_with_name(field.name()).is_some() {
            return Err(CatalogError::ColumnExists {
                table: name.to_string(),
                column: field.name().clone(),
            });
        }
        let mut fields: Vec<Field> = table
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(field);
        let schema = Schema::new(fields);
        let bytes = encode_schema(&schema).map_err(|e| CatalogError::Corrupt {
            table: name.to_string(),
            reason: e.to_string(),
        })?;
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE tables SET schema = ?1 WHERE table_id = ?2",
                params![bytes, table.table_id.0],
            )?;
            if changed == 0 {
                return Err(CatalogError::TableNotFound {
                    name: name.to_string(),
                });
            }
            Ok(())
        })
    }
}

fn next_id(tx: &Transaction<'_>, name: &str, first: i64) -> Result<i64> {
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

fn table_id_of(tx: &Transaction<'_>, name: &str) -> Result<Option<TableId>> {
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

fn insert_local_shard(tx: &Transaction<'_>, table_id: i64) -> Result<()> {
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

fn reserve_shards(
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

fn insert_files(tx: &Transaction<'_>, files: &[(PlacementId, FileMeta)]) -> Result<()> {
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
    }
    Ok(())
}

fn files_of_table(tx: &Transaction<'_>, table: TableId) -> Result<Vec<(GroupId, FileMeta)>> {
    let mut stmt = tx.prepare(
        "SELECT p.groupid, f.path, f.row_count, f.byte_size FROM shard_files f \
         JOIN placements p USING (placementid) JOIN shards s USING (shardid) \
         WHERE s.table_id = ?1",
    )?;
    let rows = stmt.query_map(params![table.0], |r| {
        Ok((
            GroupId(r.get(0)?),
            FileMeta {
                path: r.get(1)?,
                row_count: r.get::<_, i64>(2)? as u64,
                byte_size: r.get::<_, i64>(3)? as u64,
            },
        ))
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

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
        catalog.commit_distribution(&plan, &[])?;
        let plan_b = catalog.plan_distribution("b", &request)?;
        catalog.commit_distribution(&plan_b, &[])?;
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
