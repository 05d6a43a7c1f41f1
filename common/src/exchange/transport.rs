//! [`Transport`]: how a task reaches the process that runs it and how its rows come back. A
//! task is a `TaskTicket` (a datafusion-proto plan, and for a shuffle the output partition
//! asked for); the answer is a stream of Arrow batches.
//!
//! Implementations: [`super::flight_transport::FlightTransport`] (Flight `DoGet` with a
//! request MAC, between processes), the coordinator's worker pool (the same, with retries on
//! a fresh connection), and the worker's in-process one (calls a worker service of the same
//! process directly, on that worker's runtime: an embedded cluster without sockets between
//! its nodes). A worker's fragments find the transport to their peers in the task context's
//! [`TransportExtension`].
//!
//! A transport also stops producer tasks whose statement is over
//! ([`Transport::cancel_shuffles`]); see [`super::shuffle_cancel`] for who sends it when.

use std::fmt;
use std::sync::Arc;

use arrow_flight::{Action, Ticket};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;

use super::task_report::ReceivedReports;
use crate::auth::{Audience, ClusterSecret, FlightMethod};
use crate::wire::{
    ACTION_CANCEL_SHUFFLES, ACTION_READ_SHARD_FILE, CancelShufflesRequest, ReadShardFileRequest,
    ShardFileChunk, TaskReport,
};

/// Where a task runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskTarget {
    /// The worker's Flight endpoint (`http://host:port`).
    pub url: String,
    /// The identity requests to it are addressed to (its proved `worker_id`).
    pub audience: String,
    /// `host:port`, for messages.
    pub label: String,
}

/// Told what a task sends back: the size of every Arrow Flight message (header and body
/// bytes), for the statement's counters and `EXPLAIN ANALYZE`, and the report the answer ends
/// with (see [`super::task_report`]).
#[derive(Clone)]
pub struct WireMeter {
    /// Called with each Flight message's size.
    pub message: Arc<dyn Fn(usize) + Send + Sync>,
    /// Called with the report the answer ends with.
    pub report: Arc<dyn Fn(TaskReport) + Send + Sync>,
}

impl WireMeter {
    /// A meter that only keeps reports, in `received`.
    pub fn reports_into(received: ReceivedReports) -> Self {
        Self {
            message: Arc::new(|_| {}),
            report: Arc::new(move |report| received.add_task(report)),
        }
    }
}

impl fmt::Debug for WireMeter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireMeter")
    }
}

/// Runs tasks on other nodes; see the module docs.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends `ticket` (an encoded `TaskTicket`) to `target` and streams the batches it
    /// answers with, in `schema`, telling `meter` each message's size. Failures name the
    /// target.
    async fn run_task(
        &self,
        target: &TaskTarget,
        ticket: Vec<u8>,
        schema: SchemaRef,
        meter: WireMeter,
    ) -> Result<SendableRecordBatchStream>;

    /// Tells `target` to stop the shuffle producer tasks `request.stage_keys` and forget them:
    /// their statement is over. Tasks it does not know (finished, never started) are ignored.
    async fn cancel_shuffles(
        &self,
        target: &TaskTarget,
        request: CancelShufflesRequest,
    ) -> Result<()>;

    /// Streams the bytes of the shard file `path` on `target` (a shard move copying files
    /// worker to worker). The last chunk carries the checksum of the whole file.
    async fn read_shard_file(&self, target: &TaskTarget, path: &str) -> Result<ShardFileChunks> {
        let _ = path;
        Err(datafusion::error::DataFusionError::NotImplemented(format!(
            "this transport cannot read files from {}",
            target.label
        )))
    }
}

/// The chunks of a shard file read from a peer ([`Transport::read_shard_file`]).
pub type ShardFileChunks =
    futures::stream::BoxStream<'static, std::result::Result<ShardFileChunk, tonic::Status>>;

/// The `DoAction` request that reads the shard file `path` from `target`, carrying the
/// request MAC addressed to the target's identity.
pub fn signed_read_file_request(
    secret: &ClusterSecret,
    target: &TaskTarget,
    path: &str,
) -> Result<tonic::Request<Action>> {
    let body = prost::Message::encode_to_vec(&ReadShardFileRequest {
        path: path.to_string(),
    });
    signed_action(secret, target, ACTION_READ_SHARD_FILE, body)
}

/// The `DoAction` request `kind` with `body` for `target`, carrying the request MAC
/// addressed to the target's identity.
fn signed_action(
    secret: &ClusterSecret,
    target: &TaskTarget,
    kind: &str,
    body: Vec<u8>,
) -> Result<tonic::Request<Action>> {
    let audience = audience_of(target)?;
    let mut request = tonic::Request::new(Action::new(kind.to_string(), body));
    let (kind, body) = (
        request.get_ref().r#type.clone(),
        request.get_ref().body.clone(),
    );
    secret.sign(
        request.metadata_mut(),
        FlightMethod::DoAction,
        &audience,
        &[kind.as_bytes(), &body],
    );
    Ok(request)
}

/// The chunks in the results of a read-file action.
pub fn file_chunks(
    results: impl futures::Stream<Item = std::result::Result<arrow_flight::Result, tonic::Status>>
    + Send
    + 'static,
) -> ShardFileChunks {
    use futures::StreamExt;
    results
        .map(|result| {
            let result = result?;
            <ShardFileChunk as prost::Message>::decode(result.body).map_err(|e| {
                tonic::Status::internal(format!("a peer sent an undecodable file chunk: {e}"))
            })
        })
        .boxed()
}

/// The transport a node's plans use to reach their peers, kept in the DataFusion session
/// config (`SessionConfig::with_extension`).
#[derive(Debug, Clone)]
pub struct TransportExtension(pub Arc<dyn Transport>);

/// The `DoGet` request that runs `ticket` on `target`, carrying the request MAC addressed to
/// the target's identity (what every transport sends, over a socket or not). Fails on an
/// identity that is not one.
pub fn signed_task_request(
    secret: &ClusterSecret,
    target: &TaskTarget,
    ticket: Vec<u8>,
) -> Result<tonic::Request<Ticket>> {
    let audience = audience_of(target)?;
    let mut request = tonic::Request::new(Ticket::new(ticket));
    let command = request.get_ref().ticket.clone();
    secret.sign(
        request.metadata_mut(),
        FlightMethod::DoGet,
        &audience,
        &[&command],
    );
    Ok(request)
}

/// The `DoAction` request that cancels `stage_keys` on `target`, carrying the request MAC
/// addressed to the target's identity.
pub fn signed_cancel_request(
    secret: &ClusterSecret,
    target: &TaskTarget,
    request: &CancelShufflesRequest,
) -> Result<tonic::Request<Action>> {
    let body = prost::Message::encode_to_vec(request);
    signed_action(secret, target, ACTION_CANCEL_SHUFFLES, body)
}

fn audience_of(target: &TaskTarget) -> Result<Audience> {
    Audience::worker(&target.audience).map_err(|e| {
        crate::status::from_status(tonic::Status::invalid_argument(format!(
            "worker {}: {e}",
            target.label
        )))
    })
}
