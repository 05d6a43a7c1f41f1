//! Moving rows between processes.
//!
//! - [`transport`]: the [`Transport`](transport::Transport) trait every task goes through;
//!   [`flight_transport`]: its Arrow Flight implementation; [`peer_channel`]: channels,
//!   timeouts and failure reporting between nodes; [`task_answer`]: decoding what a task
//!   answers, for every transport; [`task_report`]: what a task reports when its answer
//!   ends (rows, bytes, time, spills), for `EXPLAIN ANALYZE`.
//! - [`shuffle_read`]: [`ShuffleReadExec`](shuffle_read::ShuffleReadExec), the reading end of
//!   a worker-to-worker shuffle; [`shard_index`]: routing rows into another table's shards;
//!   [`shuffle_cancel`]: stopping the producer tasks of a statement that is over.

pub mod flight_transport;
pub mod peer_channel;
pub mod shard_index;
pub mod shuffle_cancel;
pub mod shuffle_read;
pub mod task_answer;
pub mod task_report;
pub mod transport;
