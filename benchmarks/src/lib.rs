//! Benchmark and test support shared by the benchmark runner and the integration tests.
//!
//! - [`tpch`]: TPC-H data generated in-process (`tpchgen`), written as Parquet, the standard
//!   ShardFusion distribution scheme, and the 22 queries.

pub mod tpch;
