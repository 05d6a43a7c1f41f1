//! Citus's metadata tables and views over a [`CatalogSnapshot`]: `pg_dist_node`,
//! `pg_dist_partition`, `pg_dist_shard`, `pg_dist_placement`, `pg_dist_colocation`,
//! `pg_dist_cleanup`, `citus_tables` and `citus_shards`, with Citus's column names
//! (`citus_shards` adds `row_count`), and PostgreSQL's `pg_stats` ([`crate::pg_stats`]).
//!
//! Values Citus keeps as `regclass` (`logicalrelid`, `table_name`) are shown as the table name,
//! as psql would print them. Local tables do not appear, as plain Postgres tables do not.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::model::{CatalogSnapshot, TableKind};

/// One of the metadata relations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataTable {
    DistNode,
    DistPartition,
    DistShard,
    DistPlacement,
    DistColocation,
    DistCleanup,
    CitusTables,
    CitusShards,
    /// PostgreSQL's `pg_stats`, from the files' column statistics (see [`crate::pg_stats`]).
    PgStats,
    /// PostgreSQL's `pg_indexes`: each table's indexes and the unique constraints (primary
    /// keys included), which PostgreSQL keeps as unique indexes.
    PgIndexes,
}

impl MetadataTable {
    pub const ALL: [MetadataTable; 10] = [
        Self::DistNode,
        Self::DistPartition,
        Self::DistShard,
        Self::DistPlacement,
        Self::DistColocation,
        Self::DistCleanup,
        Self::CitusTables,
        Self::CitusShards,
        Self::PgStats,
        Self::PgIndexes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::DistNode => "pg_dist_node",
            Self::DistPartition => "pg_dist_partition",
            Self::DistShard => "pg_dist_shard",
            Self::DistPlacement => "pg_dist_placement",
            Self::DistColocation => "pg_dist_colocation",
            Self::DistCleanup => "pg_dist_cleanup",
            Self::CitusTables => "citus_tables",
            Self::CitusShards => "citus_shards",
            Self::PgStats => "pg_stats",
            Self::PgIndexes => "pg_indexes",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn schema(self) -> SchemaRef {
        let f = |name: &str, t: DataType| Field::new(name, t, true);
        use DataType::{Boolean, Int32, Int64, Utf8};
        let fields = match self {
            Self::DistNode => vec![
                f("nodeid", Int32),
                f("groupid", Int32),
                f("nodename", Utf8),
                f("nodeport", Int32),
                f("noderack", Utf8),
                f("hasmetadata", Boolean),
                f("isactive", Boolean),
                f("noderole", Utf8),
                f("nodecluster", Utf8),
                f("metadatasynced", Boolean),
                f("shouldhaveshards", Boolean),
            ],
            Self::DistPartition => vec![
                f("logicalrelid", Utf8),
                f("partmethod", Utf8),
                f("partkey", Utf8),
                f("colocationid", Int32),
                f("repmodel", Utf8),
                f("autoconverted", Boolean),
            ],
            Self::DistShard => vec![
                f("logicalrelid", Utf8),
                f("shardid", Int64),
                f("shardstorage", Utf8),
                f("shardminvalue", Utf8),
                f("shardmaxvalue", Utf8),
            ],
            Self::DistPlacement => vec![
                f("placementid", Int64),
                f("shardid", Int64),
                f("shardstate", Int32),
                f("shardlength", Int64),
                f("groupid", Int32),
            ],
            Self::DistColocation => vec![
                f("colocationid", Int32),
                f("shardcount", Int32),
                f("replicationfactor", Int32),
                f("distributioncolumntype", Utf8),
                f("distributioncolumncollation", Utf8),
            ],
            Self::DistCleanup => vec![
                f("record_id", Int64),
                f("operation_id", Int64),
                f("object_type", Int32),
                f("object_name", Utf8),
                f("node_group_id", Int32),
                f("policy_type", Int32),
            ],
            Self::CitusTables => vec![
                f("table_name", Utf8),
                f("citus_table_type", Utf8),
                f("distribution_column", Utf8),
                f("colocation_id", Int32),
                f("table_size", Utf8),
                f("shard_count", Int32),
                f("table_owner", Utf8),
                f("access_method", Utf8),
            ],
            Self::CitusShards => vec![
                f("table_name", Utf8),
                f("shardid", Int64),
                f("shard_name", Utf8),
                f("citus_table_type", Utf8),
                f("colocation_id", Int32),
                f("nodename", Utf8),
                f("nodeport", Int32),
                f("shard_size", Int64),
                // ShardFusion's own: rows in the placement's committed files.
                f("row_count", Int64),
            ],
            Self::PgStats => crate::pg_stats::fields(),
            Self::PgIndexes => vec![
                f("schemaname", Utf8),
                f("tablename", Utf8),
                f("indexname", Utf8),
                f("tablespace", Utf8),
                f("indexdef", Utf8),
            ],
        };
        Arc::new(Schema::new(fields))
    }

    /// The relation's rows in `snapshot`.
    pub fn batch(self, snapshot: &CatalogSnapshot) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = match self {
            Self::DistNode => {
                let n = &snapshot.nodes;
                vec![
                    ints(n.iter().map(|x| x.node_id.0)),
                    ints(n.iter().map(|x| x.group_id.0)),
                    strs(n.iter().map(|x| Some(x.node_name.clone()))),
                    ints(n.iter().map(|x| i32::from(x.node_port))),
                    strs(n.iter().map(|x| Some(x.node_rack.clone()))),
                    bools(n.iter().map(|_| true)),
                    bools(n.iter().map(|x| x.is_active)),
                    strs(n.iter().map(|x| Some(x.node_role.clone()))),
                    strs(n.iter().map(|x| Some(x.node_cluster.clone()))),
                    bools(n.iter().map(|_| true)),
                    bools(n.iter().map(|x| x.should_have_shards)),
                ]
            }
            Self::DistPartition => {
                let t: Vec<_> = citus_tables(snapshot).collect();
                vec![
                    strs(t.iter().map(|x| Some(x.name.clone()))),
                    strs(t.iter().map(|x| {
                        Some(
                            match x.kind {
                                TableKind::Distributed { .. } => "h",
                                _ => "n",
                            }
                            .to_string(),
                        )
                    })),
                    strs(t.iter().map(|x| match &x.kind {
                        TableKind::Distributed { column, .. } => Some(column.clone()),
                        _ => None,
                    })),
                    ints(t.iter().map(|x| x.kind.colocation_id().map_or(0, |c| c.0))),
                    strs(t.iter().map(|x| {
                        Some(
                            match x.kind {
                                TableKind::Reference { .. } => "t",
                                _ => "s",
                            }
                            .to_string(),
                        )
                    })),
                    bools(t.iter().map(|_| false)),
                ]
            }
            Self::DistShard => {
                let rows: Vec<_> = citus_tables(snapshot)
                    .flat_map(|t| t.shards.iter().map(move |s| (t, s)))
                    .collect();
                vec![
                    strs(rows.iter().map(|(t, _)| Some(t.name.clone()))),
                    longs(rows.iter().map(|(_, s)| s.shard_id.0)),
                    strs(rows.iter().map(|_| Some("t".to_string()))),
                    strs(
                        rows.iter()
                            .map(|(_, s)| s.hash_range.map(|r| r.0.to_string())),
                    ),
                    strs(
                        rows.iter()
                            .map(|(_, s)| s.hash_range.map(|r| r.1.to_string())),
                    ),
                ]
            }
            Self::DistPlacement => {
                let rows: Vec<_> = citus_tables(snapshot)
                    .flat_map(|t| t.shards.iter())
                    .flat_map(|s| s.placements.iter().map(move |p| (s, p)))
                    .collect();
                vec![
                    longs(rows.iter().map(|(_, p)| p.placement_id.0)),
                    longs(rows.iter().map(|(s, _)| s.shard_id.0)),
                    ints(rows.iter().map(|(_, p)| p.shard_state)),
                    longs(rows.iter().map(|(_, p)| p.byte_size() as i64)),
                    ints(rows.iter().map(|(_, p)| p.group_id.0)),
                ]
            }
            Self::DistColocation => {
                let c: Vec<_> = snapshot.colocations.values().collect();
                vec![
                    ints(c.iter().map(|x| x.colocation_id.0)),
                    ints(c.iter().map(|x| x.shard_count)),
                    ints(c.iter().map(|x| x.replication_factor)),
                    strs(c.iter().map(|x| Some(x.distribution_column_type.clone()))),
                    strs(c.iter().map(|_| Some("default".to_string()))),
                ]
            }
            Self::DistCleanup => {
                let c = &snapshot.cleanup;
                vec![
                    longs(c.iter().map(|x| x.record_id)),
                    longs(c.iter().map(|x| x.operation_id)),
                    ints(c.iter().map(|x| x.object_type)),
                    strs(c.iter().map(|x| Some(x.object_name.clone()))),
                    ints(c.iter().map(|x| x.group_id.0)),
                    ints(c.iter().map(|x| x.policy as i32)),
                ]
            }
            Self::CitusTables => {
                let t: Vec<_> = citus_tables(snapshot).collect();
                vec![
                    strs(t.iter().map(|x| Some(x.name.clone()))),
                    strs(t.iter().map(|x| Some(x.kind.citus_type().to_string()))),
                    strs(t.iter().map(|x| match &x.kind {
                        TableKind::Distributed { column, .. } => Some(column.clone()),
                        _ => Some("<none>".to_string()),
                    })),
                    ints(t.iter().map(|x| x.kind.colocation_id().map_or(0, |c| c.0))),
                    strs(t.iter().map(|x| Some(pretty_size(x.byte_size())))),
                    ints(t.iter().map(|x| x.shards.len() as i32)),
                    strs(t.iter().map(|_| Some("shardfusion".to_string()))),
                    strs(t.iter().map(|_| Some("parquet".to_string()))),
                ]
            }
            Self::CitusShards => {
                let rows: Vec<_> = citus_tables(snapshot)
                    .flat_map(|t| t.shards.iter().map(move |s| (t, s)))
                    .flat_map(|(t, s)| s.placements.iter().map(move |p| (t, s, p)))
                    .collect();
                let node = |g| snapshot.node_of_group(g);
                vec![
                    strs(rows.iter().map(|(t, _, _)| Some(t.name.clone()))),
                    longs(rows.iter().map(|(_, s, _)| s.shard_id.0)),
                    strs(
                        rows.iter()
                            .map(|(t, s, _)| Some(format!("{}_{}", t.name, s.shard_id))),
                    ),
                    strs(
                        rows.iter()
                            .map(|(t, _, _)| Some(t.kind.citus_type().to_string())),
                    ),
                    ints(
                        rows.iter()
                            .map(|(t, _, _)| t.kind.colocation_id().map_or(0, |c| c.0)),
                    ),
                    strs(
                        rows.iter()
                            .map(|(_, _, p)| node(p.group_id).map(|n| n.node_name.clone())),
                    ),
                    Arc::new(Int32Array::from_iter(rows.iter().map(|(_, _, p)| {
                        node(p.group_id).map(|n| i32::from(n.node_port))
                    }))),
                    longs(rows.iter().map(|(_, _, p)| p.byte_size() as i64)),
                    longs(rows.iter().map(|(_, _, p)| p.row_count() as i64)),
                ]
            }
            Self::PgStats => crate::pg_stats::columns(snapshot),
            Self::PgIndexes => {
                let rows = pg_indexes(snapshot);
                vec![
                    strs(rows.iter().map(|_| Some("public".to_string()))),
                    strs(rows.iter().map(|r| Some(r.0.clone()))),
                    strs(rows.iter().map(|r| Some(r.1.clone()))),
                    strs(rows.iter().map(|_| None)),
                    strs(rows.iter().map(|r| Some(r.2.clone()))),
                ]
            }
        };
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }
}

fn citus_tables(
    snapshot: &CatalogSnapshot,
) -> impl Iterator<Item = &Arc<crate::model::TableMeta>> + '_ {
    snapshot
        .tables
        .values()
        .filter(|t| t.kind != TableKind::Local)
}

/// (table, index, definition) of every index and unique constraint, by table and name.
fn pg_indexes(snapshot: &CatalogSnapshot) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for table in snapshot.tables.values() {
        let definition = |name: &str, unique: bool, method: &str, columns: &[String]| {
            format!(
                "CREATE {}INDEX {name} ON public.{} USING {method} ({})",
                if unique { "UNIQUE " } else { "" },
                table.name,
                columns.join(", ")
            )
        };
        for key in &table.unique_keys {
            if !table.indexes.iter().any(|i| i.name == key.name) {
                let def = definition(&key.name, true, "btree", &key.columns);
                rows.push((table.name.clone(), key.name.clone(), def));
            }
        }
        for index in &table.indexes {
            let unique = table.unique_keys.iter().any(|k| k.name == index.name);
            let def = definition(&index.name, unique, &index.method, &index.columns);
            rows.push((table.name.clone(), index.name.clone(), def));
        }
    }
    rows.sort();
    rows
}

fn ints(values: impl Iterator<Item = i32>) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(values))
}

fn longs(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

fn bools(values: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(BooleanArray::from_iter(values.map(Some)))
}

fn strs(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

/// `pg_size_pretty`-style sizes.
pub fn pretty_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 10 * 1024 && unit + 1 < UNITS.len() {
        value = (value + 512) / 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

/// A metadata relation bound to one catalog snapshot.
#[derive(Debug)]
pub struct MetadataTableProvider {
    table: MetadataTable,
    snapshot: Arc<CatalogSnapshot>,
}

impl MetadataTableProvider {
    pub fn new(table: MetadataTable, snapshot: Arc<CatalogSnapshot>) -> Self {
        Self { table, snapshot }
    }
}

#[async_trait]
impl TableProvider for MetadataTableProvider {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.table.batch(&self.snapshot)?;
        let table = MemTable::try_new(self.table.schema(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}
