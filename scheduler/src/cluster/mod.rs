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
//! - [`in_flight_writes`]: files an operation owns for now, and collectors' claims on the
//!   files they are about to delete.
//! - [`file_retirement`]: garbage files deleted only after the statements that may read them.
//! - [`shard_copy`]: committed shard files copied worker to worker, verified.
//! - [`shard_moves`]: moving a shard group to another node while queries and writes run.
//! - [`reference_copies`]: reference tables copied to nodes that lack them.
//! - [`rebalance_plan`]: which shard groups to move where (`by_shard_count`, `by_disk_size`,
//!   draining).
//! - [`rebalance_job`]: running a plan in a statement or as the background job.

pub mod compaction;
pub mod file_retirement;
pub mod in_flight_writes;
pub mod node_membership;
pub mod orphan_cleanup;
pub mod rebalance_job;
pub mod rebalance_plan;
pub mod reference_copies;
pub mod shard_copy;
pub mod shard_moves;
pub mod shared_state;
pub mod worker_pool;

pub use shared_state::Cluster;
