//! The ShardFusion worker: stores shard files and runs plan fragments against them.
//!
//! Layout:
//! - [`server`]: `serve(listener, config, shutdown)`, the worker's gRPC server.
//! - [`service`]: [`WorkerService`], the Arrow Flight service (`DoGet` runs a fragment,
//!   `DoPut` writes a shard file, actions delete files).
//! - [`fragment`]: decoding, checking and running a fragment.
//! - [`in_process_transport`]: tasks for workers of the same process, without sockets.
//! - [`shuffle_stages`]: shuffle producer tasks, serving each consumer its partition.
//! - [`shard_writer`]: writing a stream of batches as one Parquet file through `object_store`.
//! - [`write_completion`]: a write counts only if its stream ends with the completion marker.
//! - [`file_analysis`]: reading shard files back for their column statistics (`ANALYZE`).
//! - [`file_copy`]: copying shard files from a peer worker (shard moves), verified.
//! - [`file_warming`]: taking over shard files in shared object storage (moves copy nothing).
//! - [`file_rewrite`]: rewriting a shard file copy-on-write for `UPDATE` and `DELETE`.
//! - [`shard_inventory`]: listing the shard files on disk for orphan reconciliation.
//! - [`registration`]: announcing the worker to its coordinator.
//!
//! The worker never depends on the catalog or the coordinator: it does what a request carrying
//! the cluster secret tells it, and only inside its own data directory.

pub mod error;
pub mod file_analysis;
pub mod file_copy;
pub mod file_rewrite;
pub mod file_warming;
pub mod fragment;
pub mod in_process_transport;
pub mod registration;
pub mod server;
pub mod service;
pub mod shard_inventory;
pub mod shard_writer;
pub mod shuffle_stages;
pub mod sorted_runs;
pub mod write_completion;

pub use server::{WorkerConfig, serve, serve_service};
pub use service::WorkerService;
