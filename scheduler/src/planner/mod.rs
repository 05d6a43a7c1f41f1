//! The coordinator's distributed planning passes over DataFusion's physical plan.
//!
//! [`DistributeRule`] runs after all of DataFusion's own physical optimizer rules. Walking
//! down from the root, it cuts the plan at the highest node that can run on the workers and
//! turns that subtree into a stage (a `DistributedExec`, one task per worker), applying these
//! passes in order:
//! 1. [`distribute_rule`] (with [`grouping_layout`] for aggregates and windows, and
//!    [`aligned_moves`]): decides the cut, by the [`shard_layout`] of each subtree. A subtree
//!    qualifies when it runs shard group by shard group (scans with filters and projections,
//!    partial — or, grouped by the distribution column, complete — aggregates, co-located
//!    joins, reference-table joins, per-partition sorts and limits, anything over a single
//!    shard), or moves rows between workers: shard-aligned moves of one join side into the
//!    other's shards, hash shuffle joins, repartitioned aggregates.
//! 2. [`broadcast`]: the small side of a join that is not co-located and cannot move between
//!    workers is cut out of the stage, planned on its own, and its rows are shipped to every
//!    worker inside the fragment. Joins inside a side that moves belong to that side's stage.
//! 3. Shuffles ([`shuffle_cuts`], routing in [`stage_output`]): each side that moves between
//!    workers becomes a producer stage
//!    (planned recursively by these same passes) ending in its routing — a hash repartition
//!    into the consumers' partitions, or a range repartition into shards — and is read
//!    through a `ShuffleReadExec` placeholder (the filtering side of a semi, anti or mark
//!    join ships its distinct rows, [`existence_sides`]); [`repair`] restores what nodes required of
//!    inputs a cut changed (partitioning, one partition, order).
//! 4. Round-robin exchanges are dropped (each shard is already a partition).
//! 5. [`partition_wise`]: hash exchanges under co-located joins and under aggregates grouped
//!    by the distribution column are dropped; they work shard by shard.
//! 6. [`partial_reduce`]: a fragment ending in a partial aggregate merges its shards' states
//!    on the worker before sending them.
//!
//! The choices between moving, broadcasting and gathering weigh [`row_estimates`] (row
//! counts, filter selectivities and join sizes from the column statistics); settings that
//! steer them are [`PlannerOptions`] (`shardfusion.*`).
//!
//! Everything above the stage (final aggregation, joins that could not be pushed, merges)
//! runs on the coordinator.
//!
//! Before physical planning: [`router`] recognizes queries pinned to one shard group (planned
//! for one partition), and [`function_volatility`] tells whether a plan needs its
//! statement's start time or may be reused.

pub mod aligned_moves;
pub mod broadcast;
pub mod distribute_rule;
pub mod exchanges;
pub mod existence_sides;
pub mod function_volatility;
pub mod grouping_layout;
pub mod operators;
pub mod partial_reduce;
pub mod partition_wise;
pub mod planner_options;
pub mod repair;
pub mod router;
pub mod row_estimates;
pub mod shard_layout;
pub mod shuffle_cuts;
pub mod stage_output;
pub mod statement_counters;

pub use distribute_rule::DistributeRule;
pub use planner_options::PlannerOptions;
