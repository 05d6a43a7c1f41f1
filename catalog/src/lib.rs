//! The cluster's metadata: nodes, tables, distribution, shards, placements and the committed
//! Parquet files of every placement.
//!
//! Layout:
//! - [`model`]: the metadata types and the immutable [`CatalogSnapshot`] queries plan against.
//! - [`store`]: [`Catalog`], the durable SQLite store; every change is one transaction, after
//!   which a new snapshot is published.
//! - [`node_store`]: adding, re-registering and removing worker nodes.
//! - [`distribution_store`]: planning and committing a table's distribution, re-checking
//!   inside the commit what the plan and the move of its rows relied on.
//! - [`commit_checks`]: what every commit re-checks under the write lock (the table still
//!   owns the placements, is not fenced, still takes the rows' columns).
//! - [`write_fence`]: holding off commits into a table whose rows are being distributed.
//! - [`snapshot_loader`]: reading a whole snapshot back from SQLite.
//! - [`layout`]: placing new shards on worker groups (Citus's round-robin and colocation).
//! - [`metadata_tables`]: `pg_dist_*`, `citus_tables` and `citus_shards` as DataFusion tables.
//! - [`column_stats_store`]: `column_stats`, each committed file's per-column statistics.
//! - [`placement_store`]: switching placements to the nodes their files were copied to
//!   (shard moves, new reference-table copies).
//! - [`reshard_store`]: re-sharding distributed tables (`alter_distributed_table`).
//! - [`tenant_isolation_store`]: splitting a shard group to give one tenant its own shards
//!   (`isolate_tenant_to_new_shard`), committed as a re-shard of that group.
//! - [`pg_stats`]: the `pg_stats` view over the files' column statistics.
//! - [`roles`], [`role_store`]: users and roles, their memberships and table privileges.
//! - [`storage_binding`]: the storage (local disks or one S3 prefix) the shard files live in.
//! - [`catalog_branch`]: a transaction's private working copy of the catalog for its DDL, and
//!   the commit that brings its changes in.
//! - [`cleanup`]: `pg_dist_cleanup`, the deletions of shard files still owed to nodes.
//! - [`sequence_store`]: sequences and the blocks of values they hand out.
//! - [`column_default_store`]: column defaults, and creating a table with its defaults and
//!   owned sequences in one transaction.
//!
//! The catalog never talks to workers and never reads or writes shard files; the coordinator
//! does that and tells the catalog what to commit.

pub mod catalog_branch;
pub mod check_constraint_store;
pub mod cleanup;
pub mod column_changes;
pub mod column_default_store;
pub mod column_stats_store;
mod commit_checks;
pub mod compaction_store;
pub mod distribution_store;
pub mod error;
pub mod file_changes;
pub mod foreign_key_store;
pub mod index_store;
pub mod layout;
pub mod metadata_tables;
pub mod model;
pub mod node_store;
pub mod pg_stats;
pub mod placement_store;
pub mod reshard_store;
pub mod role_store;
pub mod roles;
pub mod sequence_store;
pub mod snapshot_loader;
pub mod storage_binding;
pub mod store;
pub mod tenant_isolation_store;
#[cfg(test)]
mod test_support;
pub mod undistribution_store;
pub mod unique_key_store;
pub mod view_store;
pub mod write_fence;

pub use catalog_branch::{BranchCheckpoint, CatalogBranch};
pub use column_default_store::TableKeys;
pub use distribution_store::DistributionCommit;
pub use error::{CatalogError, ConcurrentChange};
pub use file_changes::FileChange;
pub use model::{
    CatalogSnapshot, Colocation, FileMeta, Node, PlacementMeta, ShardMeta, TableKind, TableMeta,
};
pub use placement_store::{MovedFiles, PlacementCopy};
pub use store::Catalog;
