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

use std::fmt;
use std::sync::Arc;

use arrow_flight::Ticket;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;

use crate::auth::{Audience, ClusterSecret, FlightMethod};

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

/// Told the size of every Arrow Flight message a task sends back (header and body bytes),
/// for the statement's counters and `EXPLAIN ANALYZE`.
pub type WireMeter = Arc<dyn Fn(usize) + Send + Sync>;

/// A meter that counts nothing.
pub fn no_meter() -> WireMeter {
    Arc::new(|_| {})
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
    let audience = Audience::worker(&target.audience).map_err(|e| {
        crate::status::from_status(tonic::Status::invalid_argument(format!(
            "worker {}: {e}",
            target.label
        )))
    })?;
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
