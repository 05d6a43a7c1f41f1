//! The coordinator's distributed planning passes over DataFusion's physical plan.
//!
//! Passes, in the order they run (after all of DataFusion's own physical optimizer rules):
//! 1. [`distribute_rule::DistributeRule`]: finds the largest chains above each worker-side
//!    `ShardScanExec` that can run per shard (filter, projection, partial aggregate, per-partition
//!    sort and limit) and replaces each with a `DistributedExec` that ships the chain to the
//!    workers holding the shards.
//!
//! Everything above a `DistributedExec` (final aggregation, joins, merges) runs on the
//! coordinator.

pub mod broadcast;
pub mod distribute_rule;
pub mod partial_reduce;

pub use distribute_rule::DistributeRule;
