//! Benchmark and test support shared by the benchmark runner and the integration tests.
//!
//! - [`cluster`]: an embedded cluster (coordinator and workers in this process, on loopback).
//! - [`client`]: a Flight SQL client returning batches or the server's gRPC status.
//! - [`compare`]: comparing answers with single-node DataFusion's.
//! - [`tpch`]: TPC-H data generated in-process (`tpchgen`), written as Parquet, the standard
//!   ShardFusion distribution scheme, loading, and the 22 queries.
//! - [`target`]: the cluster a benchmark measures (embedded, or `--url`); [`processes`]: a
//!   cluster of separate `shardfusion` processes; [`s3_server`]: an S3-compatible server
//!   (moto) for `--storage s3://...`.
//! - Subcommands of `shardfusion-bench`: [`tpch_run`], [`ingest_run`], [`router_run`],
//!   [`scaleout_run`], [`memory_run`], [`rebalance_run`], [`rewrite_run`].
//! - Output: [`machine`] (what it ran on), [`report`] (JSON and Markdown), [`chart`] (SVG),
//!   [`progress`] (progress bars).

pub mod chart;
pub mod client;
pub mod cluster;
pub mod compare;
pub mod ingest_run;
pub mod machine;
pub mod memory_run;
pub mod processes;
pub mod progress;
pub mod rebalance_run;
pub mod report;
pub mod rewrite_run;
pub mod router_run;
pub mod s3_server;
pub mod scaleout_run;
pub mod target;
pub mod tpch;
pub mod tpch_run;
