//! The live cluster as the coordinator sees it.
//!
//! - [`shared_state`]: [`Cluster`], what every part of the coordinator shares (catalog, worker
//!   channels, data root, DataFusion runtime).
//! - [`worker_pool`]: channels to the workers, with keepalives, deadlines and retries.
//! - [`node_membership`]: which hosts become nodes, each only after proving it knows the
//!   cluster secret.
//! - [`compaction`]: small files of a shard merged into one sorted file in the background.
//! - [`orphan_cleanup`]: garbage and orphaned shard files (`pg_dist_cleanup`, reconciliation
//!   with the workers' disks).

pub mod compaction;
pub mod node_membership;
pub mod orphan_cleanup;
pub mod shared_state;
pub mod worker_pool;

pub use shared_state::Cluster;
