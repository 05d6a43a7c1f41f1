//! The metadata model and the immutable snapshot that every statement plans against.
//!
//! A [`CatalogSnapshot`] is built from one committed catalog state and never changes, so a
//! query that took it reads exactly the files that were committed when it started.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use shardfusion_common::column_stats::FileStats;
use shardfusion_common::hashing::ShardRanges;
use shardfusion_common::ids::{ColocationId, GroupId, NodeId, PlacementId, ShardId, TableId};

/// A worker node (`pg_dist_node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub node_id: NodeId,
    pub group_id: GroupId,
    pub node_name: String,
    pub node_port: u16,
    pub node_rack: String,
    pub is_active: bool,
    pub node_role: String,
    pub node_cluster: String,
    pub should_have_shards: bool,
}

impl Node {
    /// The worker's Flight endpoint.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.node_name, self.node_port)
    }
}

/// How a table is laid out across the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableKind {
    /// Lives on the coordinator only.
    Local,
    /// Hash-partitioned on `column` into the shards of a colocation group.
    Distributed {
        column: String,
        colocation_id: ColocationId,
    },
    /// One shard, replicated on every worker.
    Reference { colocation_id: ColocationId },
}

impl TableKind {
    /// The name Citus shows in `citus_tables.citus_table_type`.
    pub fn citus_type(&self) -> &'static str {
        match self {
            TableKind::Local => "local",
            TableKind::Distributed { .. } => "distributed",
            TableKind::Reference { .. } => "reference",
        }
    }

    pub fn colocation_id(&self) -> Option<ColocationId> {
        match self {
            TableKind::Local => None,
            TableKind::Distributed { colocation_id, .. }
            | TableKind::Reference { colocation_id } => Some(*colocation_id),
        }
    }
}

/// A committed Parquet file of a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Relative to the data root of the node holding the placement.
    pub path: String,
    pub row_count: u64,
    pub byte_size: u64,
    /// Per-column statistics (`column_stats_store`); `None` when unknown (written before
    /// statistics existed, or forgotten).
    pub stats: Option<Arc<FileStats>>,
}

/// One copy of a shard on one node group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementMeta {
    pub placement_id: PlacementId,
    pub group_id: GroupId,
    /// 1 = active, as in Citus.
    pub shard_state: i32,
    pub files: Vec<FileMeta>,
}

impl PlacementMeta {
    pub fn byte_size(&self) -> u64 {
        self.files.iter().map(|f| f.byte_size).sum()
    }

    pub fn row_count(&self) -> u64 {
        self.files.iter().map(|f| f.row_count).sum()
    }
}

/// A shard and its placements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMeta {
    pub shard_id: ShardId,
    /// Position in the table's shard list, in hash-range order (the same position holds the
    /// same range in every table of a colocation group).
    pub index: usize,
    /// Inclusive hash range; `None` for reference and local tables.
    pub hash_range: Option<(i32, i32)>,
    pub placements: Vec<PlacementMeta>,
}

/// A table with its schema, distribution and shards.
#[derive(Debug, Clone)]
pub struct TableMeta {
    pub table_id: TableId,
    pub name: String,
    pub schema: SchemaRef,
    pub kind: TableKind,
    pub shards: Vec<ShardMeta>,
    /// The defaults of its columns that have one.
    pub defaults: Vec<crate::column_default_store::ColumnDefault>,
    /// Its foreign keys, as declared (not enforced).
    pub foreign_keys: Vec<crate::foreign_key_store::ForeignKey>,
    /// Its primary key and unique constraints (enforced by the coordinator's writers).
    pub unique_keys: Vec<crate::unique_key_store::UniqueKey>,
    /// Its `CHECK` constraints (evaluated by the coordinator's writers).
    pub checks: Vec<crate::check_constraint_store::CheckConstraint>,
    /// Its indexes (bloom filters on their columns in the files written for it).
    pub indexes: Vec<crate::index_store::TableIndex>,
}

impl TableMeta {
    /// The columns the table's indexes name: the files written for it keep a bloom filter
    /// for each.
    pub fn indexed_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = Vec::new();
        for column in self.indexes.iter().flat_map(|i| &i.columns) {
            if !columns.contains(column) {
                columns.push(column.clone());
            }
        }
        columns
    }
    /// Index and type of the distribution column, for distributed tables.
    pub fn distribution_column(&self) -> Option<(usize, &str, &DataType)> {
        match &self.kind {
            TableKind::Distributed { column, .. } => {
                let (index, field) = self.schema.column_with_name(column)?;
                Some((index, field.name().as_str(), field.data_type()))
            }
            _ => None,
        }
    }

    /// The hash ranges of a distributed table's shards, by which its rows are placed;
    /// `None` for other tables.
    pub fn shard_ranges(&self) -> Option<ShardRanges> {
        self.distribution_column()?;
        let ranges: Option<Vec<(i32, i32)>> = self.shards.iter().map(|s| s.hash_range).collect();
        ShardRanges::from_ranges(&ranges?).ok()
    }

    /// The shard of a distributed table whose hash range holds `hash`.
    pub fn shard_of_hash(&self, hash: i32) -> Option<&ShardMeta> {
        self.shards.get(self.shard_ranges()?.index_of(hash)?)
    }

    /// Where the table's shards are.
    pub fn layout(&self) -> Vec<crate::layout::ShardLayout> {
        self.shards
            .iter()
            .map(|s| {
                let groups = s.placements.iter().map(|p| (p.placement_id, p.group_id));
                (s.shard_id, groups.collect())
            })
            .collect()
    }

    pub fn row_count(&self) -> u64 {
        self.shards
            .iter()
            .filter_map(|s| s.placements.first())
            .map(PlacementMeta::row_count)
            .sum()
    }

    pub fn byte_size(&self) -> u64 {
        self.shards
            .iter()
            .flat_map(|s| s.placements.iter())
            .map(PlacementMeta::byte_size)
            .sum()
    }
}

/// A colocation group (`pg_dist_colocation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Colocation {
    pub colocation_id: ColocationId,
    pub shard_count: i32,
    pub replication_factor: i32,
    /// The distribution column type, as SQL would name it; empty for reference tables.
    pub distribution_column_type: String,
}

/// One committed state of the whole catalog.
#[derive(Debug, Default)]
pub struct CatalogSnapshot {
    /// Increases with every committed change.
    pub version: u64,
    pub nodes: Vec<Node>,
    /// Keyed by table name.
    pub tables: BTreeMap<String, Arc<TableMeta>>,
    pub colocations: BTreeMap<ColocationId, Colocation>,
    /// Deletions still owed (`pg_dist_cleanup`), oldest first.
    pub cleanup: Vec<crate::cleanup::CleanupRecord>,
    /// Roles, memberships and table grants.
    pub roles: Arc<crate::roles::Roles>,
    /// Sequences, by name.
    pub sequences: BTreeMap<String, Arc<crate::sequence_store::SequenceMeta>>,
    /// Views' definitions (SQL), by name.
    pub views: BTreeMap<String, String>,
}

impl CatalogSnapshot {
    pub fn table(&self, name: &str) -> Option<&Arc<TableMeta>> {
        self.tables.get(name)
    }

    pub fn node_of_group(&self, group: GroupId) -> Option<&Node> {
        self.nodes.iter().find(|n| n.group_id == group)
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| n.node_id == id)
    }

    /// Every committed file, with the node group of the placement listing it.
    pub fn referenced_files(&self) -> std::collections::HashSet<(GroupId, &str)> {
        self.tables
            .values()
            .flat_map(|t| t.shards.iter())
            .flat_map(|s| s.placements.iter())
            .flat_map(|p| p.files.iter().map(|f| (p.group_id, f.path.as_str())))
            .collect()
    }

    /// Workers that are active and accept shards, in node id order.
    pub fn active_workers(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| n.is_active && n.should_have_shards && n.group_id != GroupId::COORDINATOR)
            .collect()
    }
}
