//! [`FlightTransport`]: [`Transport`] over Arrow Flight. A task is a `DoGet` whose ticket is
//! the task and whose request MAC is addressed to the target's identity, so a worker asking
//! another for shuffle partitions proves its membership exactly as the coordinator does.

use std::sync::Arc;

use arrow_flight::Ticket;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use std::time::Duration;
use tonic::Request;

use super::peer_channel::{MAX_MESSAGE_BYTES, PeerChannels, worker_status};
use super::transport::{TaskTarget, Transport};
use crate::auth::{Audience, ClusterSecret, FlightMethod};
use crate::status::from_status;

/// Flight channels to peers, signing every task with the cluster secret.
#[derive(Debug)]
pub struct FlightTransport {
    secret: ClusterSecret,
    channels: PeerChannels,
}

impl FlightTransport {
    /// A transport whose calls fail with `Unavailable` once a peer leaves them (or its
    /// keepalive pings) unanswered for `timeout`.
    pub fn new(secret: ClusterSecret, timeout: Duration) -> Self {
        Self {
            secret,
            channels: PeerChannels::new(timeout),
        }
    }
}

#[async_trait]
impl Transport for FlightTransport {
    async fn run_task(
        &self,
        target: &TaskTarget,
        ticket: Vec<u8>,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let label = target.label.clone();
        let failed = |status: tonic::Status| from_status(worker_status(&label, status));
        let audience = Audience::worker(&target.audience)
            .map_err(|e| failed(tonic::Status::invalid_argument(e.to_string())))?;
        let channel = self
            .channels
            .channel(&target.url)
            .map_err(|e| failed(tonic::Status::invalid_argument(e)))?;
        let mut client = FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut request = Request::new(Ticket::new(ticket));
        let command = request.get_ref().ticket.clone();
        self.secret.sign(
            request.metadata_mut(),
            FlightMethod::DoGet,
            &audience,
            &[&command],
        );
        let response = self
            .channels
            .answered_in_time(&target.url, client.do_get(request))
            .await
            .map_err(failed)?;
        let frames = response.into_inner().map(move |frame| {
            frame.map_err(|s| FlightError::Tonic(Box::new(worker_status(&label, s))))
        });
        let out_schema = Arc::clone(&schema);
        let batches =
            FlightRecordBatchStream::new_from_flight_data(frames).map(move |batch| match batch {
                Ok(batch) => restamp(batch, &out_schema),
                Err(FlightError::Tonic(status)) => Err(from_status(*status)),
                Err(other) => Err(from_status(tonic::Status::internal(other.to_string()))),
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// `batch` under `schema`: the same columns, with the names, nullability and metadata the plan
/// declared (Arrow IPC carries the sender's).
pub fn restamp(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        batch.columns().to_vec(),
        &options,
    )?)
}
