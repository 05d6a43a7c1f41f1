//! Operators that run parts of a plan on the workers: [`distributed_exec`] sends a fragment to
//! every worker that holds its shards and streams the results back; [`shard_partitioned`]
//! marks, in a fragment, inputs already partitioned by shard where DataFusion planned an
//! exchange; [`task_stats`] keeps what each task of a stage sent and cost, for `EXPLAIN
//! ANALYZE`.

pub mod distributed_exec;
pub mod shard_partitioned;
pub mod task_stats;
