//! Building a [`CatalogSnapshot`] from the catalog's SQLite tables.
//!
//! Reads every node, colocation group, table, shard, placement and file in one pass and
//! assembles the immutable snapshot statements plan against. Called after every committed
//! change and when the catalog opens.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use rusqlite::Connection;
use shardfusion_common::codec::decode_schema;
use shardfusion_common::ids::{ColocationId, GroupId, NodeId, PlacementId, ShardId, TableId};

use crate::error::CatalogError;
use crate::model::{
    CatalogSnapshot, Colocation, FileMeta, Node, PlacementMeta, ShardMeta, TableKind, TableMeta,
};

type Result<T> = std::result::Result<T, CatalogError>;

/// The committed state in `conn`, numbered `version`.
pub(crate) fn load_snapshot(
    conn: &Connection,
    version: u64,
    stats_cache: &crate::column_stats_store::StatsCache,
) -> Result<CatalogSnapshot> {
    let mut nodes = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT nodeid, groupid, nodename, nodeport, noderack, isactive, noderole, \
             nodecluster, shouldhaveshards FROM nodes ORDER BY nodeid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Node {
                node_id: NodeId(r.get(0)?),
                group_id: GroupId(r.get(1)?),
                node_name: r.get(2)?,
                node_port: r.get::<_, i64>(3)? as u16,
                node_rack: r.get(4)?,
                is_active: r.get(5)?,
                node_role: r.get(6)?,
                node_cluster: r.get(7)?,
                should_have_shards: r.get(8)?,
            })
        })?;
        for row in rows {
            nodes.push(row?);
        }
    }
    let mut colocations = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT colocationid, shardcount, replicationfactor, distributioncolumntype \
             FROM colocations",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Colocation {
                colocation_id: ColocationId(r.get(0)?),
                shard_count: r.get(1)?,
                replication_factor: r.get(2)?,
                distribution_column_type: r.get(3)?,
            })
        })?;
        for row in rows {
            let c = row?;
            colocations.insert(c.colocation_id, c);
        }
    }
    // files by placement
    let mut files: BTreeMap<i64, Vec<FileMeta>> = BTreeMap::new();
    let mut column_stats = crate::column_stats_store::load_column_stats(conn, stats_cache)?;
    {
        let mut stmt = conn.prepare(
            "SELECT placementid, path, row_count, byte_size FROM shard_files ORDER BY placementid, path",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                FileMeta {
                    path: r.get(1)?,
                    row_count: r.get::<_, i64>(2)? as u64,
                    byte_size: r.get::<_, i64>(3)? as u64,
                    stats: None,
                },
            ))
        })?;
        for row in rows {
            let (p, mut f) = row?;
            f.stats = column_stats.remove(&(p, f.path.clone()));
            files.entry(p).or_default().push(f);
        }
    }
    let mut placements: BTreeMap<i64, Vec<PlacementMeta>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT placementid, shardid, groupid, shardstate FROM placements ORDER BY placementid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i32>(2)?,
                r.get::<_, i32>(3)?,
            ))
        })?;
        for row in rows {
            let (placement_id, shard_id, group, state) = row?;
            placements.entry(shard_id).or_default().push(PlacementMeta {
                placement_id: PlacementId(placement_id),
                group_id: GroupId(group),
                shard_state: state,
                files: files.remove(&placement_id).unwrap_or_default(),
            });
        }
    }
    let mut shards: BTreeMap<i64, Vec<ShardMeta>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT shardid, table_id, shard_index, minvalue, maxvalue FROM shards \
             ORDER BY table_id, shard_index",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i32>>(3)?,
                r.get::<_, Option<i32>>(4)?,
            ))
        })?;
        for row in rows {
            let (shard_id, table_id, index, min, max) = row?;
            shards.entry(table_id).or_default().push(ShardMeta {
                shard_id: ShardId(shard_id),
                index: index as usize,
                hash_range: min.zip(max),
                placements: placements.remove(&shard_id).unwrap_or_default(),
            });
        }
    }
    let mut defaults = crate::column_default_store::load(conn)?;
    let mut foreign_keys = crate::foreign_key_store::load(conn)?;
    let mut unique_keys = crate::unique_key_store::load(conn)?;
    let mut checks = crate::check_constraint_store::load(conn)?;
    let mut indexes = crate::index_store::load(conn)?;
    let mut tables = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT table_id, name, schema, kind, dist_column, colocationid FROM tables",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i32>>(5)?,
            ))
        })?;
        for row in rows {
            let (table_id, name, schema, kind, column, colocation) = row?;
            let schema: SchemaRef =
                Arc::new(decode_schema(&schema).map_err(|e| CatalogError::Corrupt {
                    table: name.clone(),
                    reason: e.to_string(),
                })?);
            let colocation_id = ColocationId(colocation.unwrap_or(0));
            let kind = match (kind.as_str(), column) {
                ("distributed", Some(column)) => TableKind::Distributed {
                    column,
                    colocation_id,
                },
                ("reference", _) => TableKind::Reference { colocation_id },
                _ => TableKind::Local,
            };
            let meta = TableMeta {
                table_id: TableId(table_id),
                name: name.clone(),
                schema,
                kind,
                shards: shards.remove(&table_id).unwrap_or_default(),
                defaults: defaults.remove(&table_id).unwrap_or_default(),
                foreign_keys: foreign_keys.remove(&table_id).unwrap_or_default(),
                unique_keys: unique_keys.remove(&table_id).unwrap_or_default(),
                checks: checks.remove(&table_id).unwrap_or_default(),
                indexes: indexes.remove(&table_id).unwrap_or_default(),
            };
            tables.insert(name, Arc::new(meta));
        }
    }
    Ok(CatalogSnapshot {
        version,
        nodes,
        tables,
        colocations,
        cleanup: crate::cleanup::load(conn)?,
        roles: Arc::new(crate::role_store::load(conn)?),
        sequences: crate::sequence_store::load(conn)?,
        views: crate::view_store::load(conn)?,
    })
}
