//! The cluster's metadata: nodes, tables, distribution, shards, placements and the committed
//! Parquet files of every placement.
//!
//! Layout:
//! - [`model`]: the metadata types and the immutable [`CatalogSnapshot`] queries plan against.
//! - [`store`]: [`Catalog`], the durable SQLite store; every change is one transaction, after
//!   which a new snapshot is published.
//! - [`snapshot_loader`]: reading a whole snapshot back from SQLite.
//! - [`layout`]: placing new shards on worker groups (Citus's round-robin and colocation).
//! - [`metadata_tables`]: `pg_dist_*`, `citus_tables` and `citus_shards` as DataFusion tables.
//!
//! The catalog never talks to workers and never reads or writes shard files; the coordinator
//! does that and tells the catalog what to commit.

pub mod error;
pub mod layout;
pub mod metadata_tables;
pub mod model;
pub mod snapshot_loader;
pub mod store;

pub use error::CatalogError;
pub use model::{
    CatalogSnapshot, Colocation, FileMeta, Node, PlacementMeta, ShardMeta, TableKind, TableMeta,
};
pub use store::Catalog;
