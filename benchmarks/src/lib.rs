//! Benchmark and test support shared by the benchmark runner and the integration tests.
//!
//! - [`cluster`]: an embedded cluster (coordinator and workers in this process, on loopback).
//! - [`client`]: a Flight SQL client returning batches or the server's gRPC status.
//! - [`compare`]: comparing answers with single-node DataFusion's.
//! - [`tpch_run`]: the `tpch` subcommand of `shardfusion-bench`.
//! - [`tpch`]: TPC-H data generated in-process (`tpchgen`), written as Parquet, the standard
//!   ShardFusion distribution scheme, and the 22 queries.

pub mod client;
pub mod cluster;
pub mod compare;
pub mod tpch;
pub mod tpch_run;
