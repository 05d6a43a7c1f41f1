//! What both sides of a ShardFusion cluster need to agree on.
//!
//! Layout:
//! - [`ids`]: newtype identifiers for nodes, groups, shards, placements and tables.
//! - [`hashing`]: the xxh3-based distribution hash and Citus-style shard ranges.
//! - [`wire`]: the protobuf messages carried in Flight tickets, descriptors and actions.
//! - [`column_stats`]: per-file column statistics (bounds, NULL counts, distinct sketches),
//!   their encoding, and what scans and file pruning make of them.
//! - [`shard_scan`]: [`ShardScanExec`], the leaf that reads committed shard files.
//! - [`broadcast`]: [`BroadcastExec`], the rows of a small join side shipped inside a fragment.
//! - [`codec`]: the datafusion-proto extension codec that knows our exec nodes.
//! - [`exchange`]: moving rows between processes — the transport trait and its Flight
//!   implementation, channels between nodes, and the reading end of shuffles.
//! - [`storage`]: a node's data root, path validation and the object store it serves.
//! - [`object_storage`]: shard files in shared S3-compatible storage (`--storage s3://...`).
//! - [`status`]: mapping between DataFusion errors and gRPC statuses.
//! - [`ipc_bounds`]: checking Flight data from a peer before arrow-ipc decodes it.
//! - [`path_redaction`]: rewriting a node's absolute paths out of the errors it sends.
//! - [`auth`]: the cluster secret, per-request MACs and membership proofs that guard
//!   internal endpoints (the secret itself never crosses the wire).
//! - [`tls`]: certificates, and TLS on the links between nodes.
//! - [`pg_types`]: PostgreSQL column types stored as text (`jsonb`, `uuid`, `inet`,
//!   `varchar(n)`, ...) and the checks their values pass when written;
//!   [`json_functions`]: the JSON operators and functions over them.
//!
//! This crate must not know about the catalog, the coordinator or the worker service.

pub mod auth;
pub mod broadcast;
pub mod codec;
pub mod column_stats;
pub mod exchange;
pub mod hashing;
pub mod ids;
pub mod ipc_bounds;
pub mod json_functions;
pub mod object_storage;
pub mod path_redaction;
pub mod pg_types;
pub mod query_limits;
pub mod shard_scan;
pub mod status;
pub mod storage;
pub mod tls;
pub mod wire;
pub mod yielding_joins;

pub use broadcast::BroadcastExec;
pub use codec::ShardFusionCodec;
pub use shard_scan::{FileRef, ShardFiles, ShardScanExec};
