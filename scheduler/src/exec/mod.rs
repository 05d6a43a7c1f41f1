//! Operators that run parts of a plan on the workers: [`distributed_exec`] sends a fragment to
//! every worker that holds its shards and streams the results back.

pub mod distributed_exec;
