//! Errors of the catalog, each naming what the user referred to.

use shardfusion_common::ids::{ColocationId, GroupId, NodeId, ShardId};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("relation \"{name}\" does not exist")]
    TableNotFound { name: String },
    #[error("relation \"{name}\" already exists")]
    TableExists { name: String },
    #[error("column \"{column}\" of relation \"{table}\" does not exist")]
    ColumnNotFound { table: String, column: String },
    #[error("invalid definition of table \"{table}\": {reason}")]
    InvalidTableDefinition { table: String, reason: String },
    #[error("column \"{column}\" of relation \"{table}\" already exists")]
    ColumnExists { table: String, column: String },
    #[error("table \"{name}\" is already distributed")]
    AlreadyDistributed { name: String },
    #[error("cannot distribute \"{table}\" by \"{column}\": {reason}")]
    BadDistributionColumn {
        table: String,
        column: String,
        reason: String,
    },
    #[error("cannot colocate \"{table}\" with \"{other}\": {reason}")]
    BadColocation {
        table: String,
        other: String,
        reason: String,
    },
    #[error("colocation group {id} does not exist")]
    ColocationNotFound { id: ColocationId },
    #[error("shard_count must be between 1 and 64000, got {given}")]
    BadShardCount { given: i64 },
    #[error(
        "there are no active worker nodes to place shards on: start a worker or call \
         citus_add_node first"
    )]
    NoWorkers,
    #[error("node {address} is not in pg_dist_node")]
    NodeNotFound { address: String },
    #[error(
        "cannot remove node {address}: it still holds {placements} shard placements; move them \
         off first with SELECT citus_drain_node('host', port), or drop the tables placed on it"
    )]
    NodeHasPlacements { address: String, placements: u64 },
    #[error(
        "cannot add {address}: the worker answering there is already node {node_id} at \
         {existing}. A worker has one address: remove that node first, or check that \
         {address} is not a proxy to it"
    )]
    NodeIdentityInUse {
        address: String,
        node_id: NodeId,
        existing: String,
    },
    #[error("shard {shard} already has a placement on node group {group}")]
    PlacementExists { shard: ShardId, group: GroupId },
    #[error(
        "this catalog's shard files are in {recorded}, but the coordinator was started with \
         storage {given}: start it with the --storage it was created with"
    )]
    StorageMismatch { recorded: String, given: String },
    #[error("{name} is not a distributed table")]
    NotDistributed { name: String },
    #[error("table {table} has already been isolated for the given value (shard {shard_id})")]
    AlreadyIsolated { table: String, shard_id: ShardId },
    /// Another statement changed what this one read before it could commit; nothing of this
    /// statement was committed, and running it again is safe.
    #[error("table \"{table}\" changed while the statement ran ({change}); retry the statement")]
    Conflict {
        table: String,
        change: ConcurrentChange,
    },
    /// A transaction's DDL could not be brought into the catalog: another session changed a
    /// row it changed (or created one it created) since the transaction's DDL began.
    #[error(
        "could not serialize access due to a concurrent catalog change ({what}); the \
         transaction was rolled back: retry it"
    )]
    BranchConflict { what: String },
    #[error(
        "column \"{column}\" of relation \"{table}\" contains null values: a NOT NULL column \
         can only be added to an empty table"
    )]
    NotNullOnRows { table: String, column: String },
    #[error("role \"{name}\" does not exist")]
    RoleNotFound { name: String },
    #[error("role \"{name}\" already exists")]
    RoleExists { name: String },
    #[error(
        "role \"{member}\" cannot be a member of role \"{role}\": \"{role}\" is a member of \"{member}\" already"
    )]
    RoleMembershipLoop { role: String, member: String },
    #[error(
        "refusing to leave no superuser that can log in with a password: logins are \
         required, so nobody could administer the cluster any more"
    )]
    LastSuperuser,
    #[error("sequence \"{name}\" does not exist")]
    SequenceNotFound { name: String },
    #[error("cannot create sequence \"{name}\": {reason}")]
    BadSequence { name: String, reason: String },
    #[error(
        "nextval: reached {} value of sequence \"{name}\" ({bound})",
        if *maximum { "maximum" } else { "minimum" }
    )]
    SequenceExhausted {
        name: String,
        bound: i64,
        maximum: bool,
    },
    #[error("setval: value {value} is out of bounds for sequence \"{name}\" ({min}..{max})")]
    SequenceValueOutOfBounds {
        name: String,
        value: i64,
        min: i64,
        max: i64,
    },
    #[error(
        "cannot drop sequence \"{name}\": the default of column \"{column}\" of table \
         \"{table}\" uses it; drop the table, or change the default, first"
    )]
    SequenceInUse {
        name: String,
        table: String,
        column: String,
    },
    #[error(
        "cannot drop table {name} because other objects depend on it: constraint \
         {constraint} on table {by} depends on table {name}"
    )]
    TableReferenced {
        name: String,
        by: String,
        constraint: String,
    },
    #[error("catalog storage failed: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("catalog holds an unreadable schema for \"{table}\": {reason}")]
    Corrupt { table: String, reason: String },
    /// The catalog contradicts itself (a bug, never the caller's doing).
    #[error("the catalog is inconsistent: {what}")]
    Inconsistent { what: String },
}

/// What another statement changed under one that read the table first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrentChange {
    /// The shards the statement wrote into are gone: the table was dropped or distributed.
    ShardsReplaced,
    /// The table's rows are being moved into shards by `create_distributed_table`.
    BeingDistributed,
    Dropped,
    /// Files the statement read were removed (TRUNCATE, or a load that replaced the rows).
    RowsRemoved,
    /// Columns were added that the statement's rows lack (ALTER TABLE).
    ColumnsChanged,
    /// A node the statement placed shards on was removed.
    NodeRemoved,
    /// A placement the statement wrote to was moved to another node.
    PlacementMoved,
    /// A placement the statement wrote to is being switched to another node right now.
    BeingMoved,
    /// A shard the statement wrote to gained a copy on another node.
    PlacementAdded,
    /// A placement's files changed while they were being copied to another node.
    FilesChanged,
}

impl std::fmt::Display for ConcurrentChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ShardsReplaced => "its shards were replaced: it was dropped or distributed",
            Self::BeingDistributed => "its rows are being moved into shards",
            Self::Dropped => "it was dropped",
            Self::RowsRemoved => "its rows were truncated or replaced",
            Self::ColumnsChanged => "its columns were altered",
            Self::NodeRemoved => "a node it was being placed on was removed",
            Self::PlacementMoved => "a shard it wrote to was moved to another node",
            Self::BeingMoved => "a shard it wrote to is being moved to another node",
            Self::PlacementAdded => "a shard it wrote to gained a copy on another node",
            Self::FilesChanged => "its files changed while a shard was copied",
        })
    }
}
