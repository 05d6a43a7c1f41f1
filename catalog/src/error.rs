//! Errors of the catalog, each naming what the user referred to.

use shardfusion_common::ids::ColocationId;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("relation \"{name}\" does not exist")]
    TableNotFound { name: String },
    #[error("relation \"{name}\" already exists")]
    TableExists { name: String },
    #[error("column \"{column}\" of relation \"{table}\" does not exist")]
    ColumnNotFound { table: String, column: String },
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
    #[error("table \"{table}\" changed while the statement ran; retry the statement")]
    Conflict { table: String },
    #[error("catalog storage failed: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("catalog holds an unreadable schema for \"{table}\": {reason}")]
    Corrupt { table: String, reason: String },
}

impl CatalogError {
    /// Whether the error is the user's (as opposed to storage trouble).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Storage(_) | Self::Corrupt { .. })
    }
}
