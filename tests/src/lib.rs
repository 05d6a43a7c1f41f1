//! Test support for ShardFusion's integration tests.
//!
//! - [`cluster`]: [`TestCluster`], a real coordinator and real workers, in process, on
//!   `127.0.0.1:0`, stopped when dropped (shared with the benchmark runner).
//! - [`client`]: a Flight SQL client that returns batches or the gRPC status (shared with the
//!   benchmark runner).
//! - [`compare`]: comparing answers with single-node DataFusion's (shared as well).
//! - [`shard_files`]: the shard files on the nodes' disks and in the catalog.
//! - [`planner_settings`]: coordinator configurations that pin the planner's choices.
//! - [`certificates`]: a CA and a node certificate made for one test (TLS tests).
//! - [`conflict`]: recognizing the retryable conflict (40001) of racing statements.
//! - [`online_loops`]: a query loop and an insert loop running while the cluster changes.
//! - [`same_rows`]: the same rows in a cluster and in single-node DataFusion; what a
//!   statement cost the coordinator.
//!
//! The tests themselves live in `tests/` (one behaviour per file) and `sql/*.slt`.

pub use shardfusion_benchmarks::client::{self, TestClient};
pub use shardfusion_benchmarks::cluster::{self, TestCluster};
pub use shardfusion_benchmarks::compare;

pub mod certificates;
pub mod conflict;
pub mod online_loops;
pub mod planner_settings;
pub mod same_rows;
pub mod shard_files;
