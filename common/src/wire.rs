//! The protobuf messages exchanged between the coordinator and the workers.
//!
//! They travel inside standard Flight frames: a [`TaskTicket`] is the `Ticket` of a `DoGet`,
//! a [`WriteRequest`] is the `FlightDescriptor.cmd` of a `DoPut`, and the remaining messages are
//! `Action` bodies and results. Plans inside them are datafusion-proto bytes, never SQL.

use prost::Message;

/// gRPC metadata key of the per-request MAC every internal call carries (see
/// [`crate::auth::request_mac`]).
pub use crate::auth::request_mac::AUTH_HEADER;

/// Action on a worker: delete files under its data root ([`DeleteFilesRequest`]).
pub const ACTION_DELETE_FILES: &str = "shardfusion.delete_files";
/// Action on a worker: answer if alive, saying where it keeps shard files
/// ([`PingResponse`]).
pub const ACTION_PING: &str = "shardfusion.ping";
/// Action on the coordinator: a worker announces itself ([`RegisterWorkerRequest`]).
pub const ACTION_REGISTER_WORKER: &str = "shardfusion.register_worker";
/// Action on a worker, answered without authentication: prove knowledge of the cluster
/// secret by answering a challenge ([`ProveMembershipRequest`]).
pub const ACTION_PROVE_MEMBERSHIP: &str = "shardfusion.prove_membership";
/// Action on a worker: list the shard files under its data root ([`ShardFileList`]), for
/// orphan reconciliation.
pub const ACTION_LIST_SHARD_FILES: &str = "shardfusion.list_shard_files";
/// Action on a worker: read shard files and return their column statistics
/// ([`AnalyzeFilesRequest`] → [`AnalyzeFilesResponse`]), for `ANALYZE`.
pub const ACTION_ANALYZE_FILES: &str = "shardfusion.analyze_files";
/// Action on a worker: stop shuffle producer tasks whose statement is over
/// ([`CancelShufflesRequest`]).
pub const ACTION_CANCEL_SHUFFLES: &str = "shardfusion.cancel_shuffles";

/// Action on a worker, from a peer worker: stream one committed shard file's bytes
/// ([`ReadShardFileRequest`] → a stream of [`ShardFileChunk`]s), for a shard move.
pub const ACTION_READ_SHARD_FILE: &str = "shardfusion.read_shard_file";
/// Action on a worker: copy shard files from a peer worker into this one's data root
/// ([`CopyShardFilesRequest`] → [`CopyShardFilesResponse`]), worker to worker.
pub const ACTION_COPY_SHARD_FILES: &str = "shardfusion.copy_shard_files";
/// Action on a worker sharing the cluster's object storage: read the footers of shard files
/// it is taking over into its metadata cache, checking them against the catalog
/// ([`WarmShardFilesRequest`] → [`CopyShardFilesResponse`], checksums 0).
pub const ACTION_WARM_SHARD_FILES: &str = "shardfusion.warm_shard_files";
/// Action on a worker: rewrite one shard file copy-on-write for an `UPDATE` or `DELETE`
/// ([`RewriteShardFileRequest`] → [`RewriteShardFileResponse`]).
pub const ACTION_REWRITE_SHARD_FILE: &str = "shardfusion.rewrite_shard_file";

/// The last column of a rewrite plan's output: whether the statement changes the row.
pub const CHANGED_COLUMN: &str = "__shardfusion_changed";

/// `app_metadata` of the last `FlightData` of a shard write: the coordinator sends it only when
/// every row of the placement has been sent. A `DoPut` stream that ends without it (a cancelled
/// statement, a client that went away) was aborted, and the worker keeps no file of it.
pub const WRITE_COMPLETE_MARKER: &[u8] = b"shardfusion.write_complete";

/// One fragment of a query for one worker: a serialized physical plan whose leaves are
/// `ShardScanExec`s naming only that worker's shards.
#[derive(Clone, PartialEq, Message)]
pub struct TaskTicket {
    /// Identifies the statement on the coordinator, for logs and cancellation.
    #[prost(string, tag = "1")]
    pub query_id: String,
    /// datafusion-proto `PhysicalPlanNode` bytes, encoded with `ShardFusionCodec`.
    #[prost(bytes = "vec", tag = "2")]
    pub plan: Vec<u8>,
    /// Set when the task is a shuffle producer: the plan ends in a hash repartition, and only
    /// this output partition is wanted (by the consumer task that owns it).
    #[prost(message, optional, tag = "3")]
    pub shuffle: Option<ShuffleOutput>,
    /// The query's memory limit in bytes (0: none): the fragment runs with a memory pool of
    /// its own that size ([`crate::query_limits`]).
    #[prost(uint64, tag = "4")]
    pub memory_limit: u64,
}

/// `app_metadata` of the last `FlightData` of a task's `DoGet` answer (a message with no IPC
/// header): what the task cost, for `EXPLAIN ANALYZE`. See
/// [`crate::exchange::task_report`].
#[derive(Clone, PartialEq, Message)]
pub struct TaskReport {
    /// This answer: a fragment (no stage key) or one partition of a shuffle producer task.
    #[prost(message, optional, tag = "1")]
    pub own: Option<PartitionReport>,
    /// What the shuffle partitions the task read reported, and what their producers read in
    /// turn (each partition of each producer task once).
    #[prost(message, repeated, tag = "2")]
    pub upstream: Vec<PartitionReport>,
}

/// The cost of one answer of a task: its rows and Flight bytes, and the task's elapsed time
/// and spills when it was sent.
#[derive(Clone, PartialEq, Message)]
pub struct PartitionReport {
    /// The producer task's stage key (`ShuffleOutput.stage_key`); empty for a fragment.
    #[prost(string, tag = "1")]
    pub stage_key: String,
    #[prost(uint64, tag = "2")]
    pub partition: u64,
    #[prost(uint64, tag = "3")]
    pub rows: u64,
    /// Flight message bytes (IPC header and body) of this answer.
    #[prost(uint64, tag = "4")]
    pub bytes: u64,
    /// Microseconds since the task started.
    #[prost(uint64, tag = "5")]
    pub elapsed_us: u64,
    /// How often the task's operators spilled to disk, and how many bytes.
    #[prost(uint64, tag = "6")]
    pub spill_count: u64,
    #[prost(uint64, tag = "7")]
    pub spilled_bytes: u64,
}

/// Which output partition of a running shuffle producer task a consumer asks for.
#[derive(Clone, PartialEq, Message)]
pub struct ShuffleOutput {
    /// Names the producer task's run on its worker: every consumer asking with the same key
    /// reads from one execution of the plan.
    #[prost(string, tag = "1")]
    pub stage_key: String,
    #[prost(uint64, tag = "2")]
    pub partition: u64,
    /// How many of the task's partitions its consumers read in all; once that many were
    /// asked for, the worker forgets the task. 0: all of them.
    #[prost(uint64, tag = "3")]
    pub readers: u64,
}

/// Opens a `DoPut` stream that writes rows of one shard placement into a new Parquet file.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(int64, tag = "1")]
    pub table_id: i64,
    #[prost(int64, tag = "2")]
    pub shard_id: i64,
    /// Unique per statement and placement; becomes the file name.
    #[prost(string, tag = "3")]
    pub write_id: String,
    /// The distribution column each row group of the file is sorted by; empty for a table
    /// without one (reference and local tables), whose rows are written as they come.
    #[prost(string, tag = "4")]
    pub sort_column: String,
    /// The columns the file keeps a Parquet bloom filter for (the table's indexed columns).
    #[prost(string, repeated, tag = "5")]
    pub bloom_filter_columns: Vec<String>,
}

/// A Parquet file a worker wrote, reported back in the `PutResult` of a `DoPut`.
#[derive(Clone, PartialEq, Message)]
pub struct WrittenFile {
    /// Path relative to the worker's data root.
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(uint64, tag = "2")]
    pub row_count: u64,
    #[prost(uint64, tag = "3")]
    pub byte_size: u64,
    /// Per-column statistics of the file (`column_stats`); empty when not recorded, which
    /// readers treat as unknown.
    #[prost(message, repeated, tag = "4")]
    pub columns: Vec<ColumnStatsMessage>,
}

/// What a file's writer (or `ANALYZE`) recorded about one column: see
/// [`crate::column_stats::ColumnStats`].
#[derive(Clone, PartialEq, Message)]
pub struct ColumnStatsMessage {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint64, tag = "2")]
    pub null_count: u64,
    /// datafusion-proto `ScalarValue` bytes of the lower bound; empty when unknown.
    #[prost(bytes = "vec", tag = "3")]
    pub min: Vec<u8>,
    /// datafusion-proto `ScalarValue` bytes of the upper bound; empty when unknown.
    #[prost(bytes = "vec", tag = "4")]
    pub max: Vec<u8>,
    /// The lower bound is a value of the column (not truncated or widened).
    #[prost(bool, tag = "5")]
    pub min_exact: bool,
    #[prost(bool, tag = "6")]
    pub max_exact: bool,
    /// Serialized `HyperLogLog` of the distinct values; empty when not kept.
    #[prost(bytes = "vec", tag = "7")]
    pub distinct_sketch: Vec<u8>,
}

/// Body of [`ACTION_ANALYZE_FILES`].
#[derive(Clone, PartialEq, Message)]
pub struct AnalyzeFilesRequest {
    /// Paths relative to the worker's data root.
    #[prost(string, repeated, tag = "1")]
    pub paths: Vec<String>,
}

/// Result of [`ACTION_ANALYZE_FILES`]: one entry per requested file that exists, with its
/// row count, size and column statistics.
#[derive(Clone, PartialEq, Message)]
pub struct AnalyzeFilesResponse {
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<WrittenFile>,
}

/// Body of [`ACTION_DELETE_FILES`].
#[derive(Clone, PartialEq, Message)]
pub struct DeleteFilesRequest {
    /// Paths relative to the worker's data root.
    #[prost(string, repeated, tag = "1")]
    pub paths: Vec<String>,
}

/// Body of [`ACTION_CANCEL_SHUFFLES`].
#[derive(Clone, PartialEq, Message)]
pub struct CancelShufflesRequest {
    /// The producer tasks' stage keys (`TaskTicket.shuffle.stage_key`).
    #[prost(string, repeated, tag = "1")]
    pub stage_keys: Vec<String>,
    /// The gRPC code of the error that ended the statement, when it failed (0 when it did
    /// not). A late request for a cancelled task fails with it, so that a reader refused
    /// because the statement is over reports the statement's cause, not the refusal.
    #[prost(int32, tag = "2")]
    pub failure_code: i32,
    /// That error's message.
    #[prost(string, tag = "3")]
    pub failure_message: String,
}

impl CancelShufflesRequest {
    /// Cancels `stage_keys`; `failure` is the error that ended their statement, if it failed.
    pub fn new(stage_keys: Vec<String>, failure: Option<&tonic::Status>) -> Self {
        Self {
            stage_keys,
            failure_code: failure.map_or(0, |status| status.code() as i32),
            failure_message: failure.map_or_else(String::new, |s| s.message().to_string()),
        }
    }

    /// The error that ended the tasks' statement, if it failed.
    pub fn failure(&self) -> Option<tonic::Status> {
        match tonic::Code::from_i32(self.failure_code) {
            tonic::Code::Ok => None,
            code => Some(tonic::Status::new(code, self.failure_message.clone())),
        }
    }
}

/// Body of [`ACTION_REGISTER_WORKER`].
#[derive(Clone, PartialEq, Message)]
pub struct RegisterWorkerRequest {
    /// Host name the coordinator should use to reach the worker.
    #[prost(string, tag = "1")]
    pub node_name: String,
    #[prost(uint32, tag = "2")]
    pub node_port: u32,
    /// Stable identity kept in the worker's data dir, so a restarted worker on a new port
    /// keeps its node id and its shards.
    #[prost(string, tag = "3")]
    pub worker_uuid: String,
}

/// Result of [`ACTION_REGISTER_WORKER`].
#[derive(Clone, PartialEq, Message)]
pub struct RegisterWorkerResponse {
    #[prost(int32, tag = "1")]
    pub node_id: i32,
    #[prost(int32, tag = "2")]
    pub group_id: i32,
}

/// Result body of [`ACTION_LIST_SHARD_FILES`]: every shard file on the worker's disk that no
/// write in progress on the worker is producing.
#[derive(Clone, PartialEq, Message)]
pub struct ShardFileList {
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<ShardFileEntry>,
}

/// One file of a [`ShardFileList`].
#[derive(Clone, PartialEq, Message)]
pub struct ShardFileEntry {
    /// Path relative to the worker's data root; a staging file keeps its `#<n>` suffix.
    #[prost(string, tag = "1")]
    pub path: String,
    /// Time since the file was last modified, by the worker's clock (so clock skew between
    /// nodes does not matter).
    #[prost(uint64, tag = "2")]
    pub age_ms: u64,
}

/// Body of [`ACTION_PROVE_MEMBERSHIP`].
#[derive(Clone, PartialEq, Message)]
pub struct ProveMembershipRequest {
    /// Fresh random bytes chosen by the coordinator.
    #[prost(bytes = "vec", tag = "1")]
    pub challenge: Vec<u8>,
}

/// Result of [`ACTION_PROVE_MEMBERSHIP`].
#[derive(Clone, PartialEq, Message)]
pub struct ProveMembershipResponse {
    /// The worker's stable identity; requests to it are MAC'd for this audience.
    #[prost(string, tag = "1")]
    pub worker_uuid: String,
    /// HMAC over the challenge and the identity (see `auth::membership`).
    #[prost(bytes = "vec", tag = "2")]
    pub proof: Vec<u8>,
}

/// Body of [`ACTION_READ_SHARD_FILE`].
#[derive(Clone, PartialEq, Message)]
pub struct ReadShardFileRequest {
    /// Relative to the data root (`shards/t<table>/s<shard>/<name>.parquet`).
    #[prost(string, tag = "1")]
    pub path: String,
}

/// One result of [`ACTION_READ_SHARD_FILE`]: the next bytes of the file; the last chunk
/// carries the xxh3-64 checksum of the whole file.
#[derive(Clone, PartialEq, Message)]
pub struct ShardFileChunk {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    /// Set on the last chunk only.
    #[prost(bool, tag = "2")]
    pub last: bool,
    /// On the last chunk: xxh3-64 of every byte sent.
    #[prost(uint64, tag = "3")]
    pub checksum: u64,
}

/// A file to copy, as the catalog records it.
#[derive(Clone, PartialEq, Message)]
pub struct FileToCopy {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(uint64, tag = "2")]
    pub byte_size: u64,
    #[prost(uint64, tag = "3")]
    pub row_count: u64,
}

/// Body of [`ACTION_WARM_SHARD_FILES`].
#[derive(Clone, PartialEq, Message)]
pub struct WarmShardFilesRequest {
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<FileToCopy>,
}

/// Body of [`ACTION_REWRITE_SHARD_FILE`]: a plan fragment that reads one shard file (a
/// `ShardScanExec` of it) and outputs the rows as the statement leaves them — the table's
/// columns, then the boolean [`CHANGED_COLUMN`] — and where to write the new file.
#[derive(Clone, PartialEq, Message)]
pub struct RewriteShardFileRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub plan: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub table_id: i64,
    #[prost(int64, tag = "3")]
    pub shard_id: i64,
    /// A UUID; becomes the new file's name.
    #[prost(string, tag = "4")]
    pub write_id: String,
    /// As in [`WriteRequest::sort_column`].
    #[prost(string, tag = "5")]
    pub sort_column: String,
    /// Whether changed rows are left out (`DELETE`) rather than written (`UPDATE`).
    #[prost(bool, tag = "6")]
    pub delete: bool,
    /// As in [`WriteRequest::bloom_filter_columns`].
    #[prost(string, repeated, tag = "7")]
    pub bloom_filter_columns: Vec<String>,
    /// The columns the new file has, IPC-encoded, when they differ from the file's (`ALTER
    /// TABLE ... ADD COLUMN ... DEFAULT`, `DROP COLUMN`, `RENAME COLUMN`); empty: the
    /// scan's.
    #[prost(bytes = "vec", tag = "8")]
    pub target_schema: Vec<u8>,
}

/// Result of [`ACTION_REWRITE_SHARD_FILE`].
#[derive(Clone, PartialEq, Message)]
pub struct RewriteShardFileResponse {
    /// Rows the statement changed (updated or deleted) in the file.
    #[prost(uint64, tag = "1")]
    pub changed_rows: u64,
    /// The file that replaces it; absent when no row changed (nothing is kept) or when
    /// every row was deleted.
    #[prost(message, optional, tag = "2")]
    pub written: Option<WrittenFile>,
}

/// Result of [`ACTION_PING`].
#[derive(Clone, PartialEq, Message)]
pub struct PingResponse {
    /// Where the worker keeps shard files: `local` (its data directory) or the shared
    /// storage URL (`s3://bucket/prefix`).
    #[prost(string, tag = "1")]
    pub storage: String,
}

/// Body of [`ACTION_COPY_SHARD_FILES`]: the worker reads each file from the peer at
/// `source_url` (whose identity is `source_audience`) and keeps it under the same path.
#[derive(Clone, PartialEq, Message)]
pub struct CopyShardFilesRequest {
    #[prost(string, tag = "1")]
    pub source_url: String,
    #[prost(string, tag = "2")]
    pub source_audience: String,
    /// `host:port` of the source, for messages.
    #[prost(string, tag = "3")]
    pub source_label: String,
    #[prost(message, repeated, tag = "4")]
    pub files: Vec<FileToCopy>,
}

/// One copied file, verified: its bytes match the source's checksum, and its size and row
/// count (read back from the Parquet footer) match what the catalog records.
#[derive(Clone, PartialEq, Message)]
pub struct CopiedFile {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(uint64, tag = "2")]
    pub byte_size: u64,
    #[prost(uint64, tag = "3")]
    pub row_count: u64,
    #[prost(uint64, tag = "4")]
    pub checksum: u64,
}

/// Result of [`ACTION_COPY_SHARD_FILES`].
#[derive(Clone, PartialEq, Message)]
pub struct CopyShardFilesResponse {
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<CopiedFile>,
}
