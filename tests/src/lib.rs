//! Test support for ShardFusion's integration tests.
//!
//! - [`cluster`]: [`TestCluster`], a real coordinator and real workers, in process, on
//!   `127.0.0.1:0`, stopped when dropped.
//! - [`client`]: a Flight SQL client that returns batches or the gRPC status.
//! - [`compare`]: running the same SQL on single-node DataFusion and comparing answers.
//!
//! The tests themselves live in `tests/` (one behaviour per file) and `sql/*.slt`.

pub mod client;
pub mod cluster;
pub mod compare;

pub use client::TestClient;
pub use cluster::TestCluster;
