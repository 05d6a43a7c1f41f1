//! The coordinator's distributed planning passes over DataFusion's physical plan.
//!
//! [`DistributeRule`] runs after all of DataFusion's own physical optimizer rules. Walking
//! down from the root, it cuts the plan at the highest node that can run on the workers and
//! turns that subtree into a fragment, applying these passes in order:
//! 1. [`distribute_rule`]: decides the cut. A subtree qualifies when it runs shard group by
//!    shard group: scans with filters and projections, partial (or, grouped by the
//!    distribution column, complete) aggregates, co-located joins, reference-table joins,
//!    per-partition sorts and limits, and anything over a single shard (the router case).
//! 2. [`broadcast`]: the small side of a join that is not co-located is cut out of the
//!    fragment, planned on its own (recursively, so it runs on the workers as far as it can),
//!    and its rows are shipped to every worker inside the fragment.
//! 3. Round-robin exchanges are dropped (each shard is already a partition).
//! 4. [`partition_wise`]: hash exchanges under co-located joins and under aggregates grouped
//!    by the distribution column are dropped; they work shard by shard.
//! 5. [`partial_reduce`]: a fragment ending in a partial aggregate merges its shards' states
//!    on the worker before sending them.
//!
//! The fragment then becomes a `DistributedExec` (one task per worker). Everything above it
//! (final aggregation, joins that could not be pushed, merges) runs on the coordinator.

pub mod broadcast;
pub mod distribute_rule;
pub mod partial_reduce;
pub mod partition_wise;

pub use distribute_rule::DistributeRule;
