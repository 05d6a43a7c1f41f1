//! [`FlightTransport`]: [`Transport`] over Arrow Flight. A task is a `DoGet` whose ticket is
//! the task and whose request MAC is addressed to the target's identity, so a worker asking
//! another for shuffle partitions proves its membership exactly as the coordinator does.

use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use super::peer_channel::{MAX_MESSAGE_BYTES, PeerChannels, worker_status};
use super::task_answer::answer_batches;
use super::transport::{
    ShardFileChunks, TaskTarget, Transport, WireMeter, file_chunks, signed_cancel_request,
    signed_read_file_request, signed_task_request,
};
use crate::auth::ClusterSecret;
use crate::status::from_status;
use crate::wire::CancelShufflesRequest;

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

    /// Reaches peers over TLS, trusting `tls`'s authority.
    pub fn with_tls(self, tls: Option<crate::tls::ClusterTls>) -> Self {
        self.channels.set_tls(tls);
        self
    }
}

impl FlightTransport {
    /// A Flight client on the shared channel to `target`.
    fn client(&self, target: &TaskTarget) -> std::result::Result<FlightClient, tonic::Status> {
        let channel = self
            .channels
            .channel(&target.url)
            .map_err(tonic::Status::invalid_argument)?;
        Ok(FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// The generated Flight client over a peer channel.
type FlightClient = FlightServiceClient<tonic::transport::Channel>;

#[async_trait]
impl Transport for FlightTransport {
    async fn run_task(
        &self,
        target: &TaskTarget,
        ticket: Vec<u8>,
        schema: SchemaRef,
        meter: WireMeter,
    ) -> Result<SendableRecordBatchStream> {
        let label = target.label.clone();
        let failed = |status: tonic::Status| from_status(worker_status(&label, status));
        let request = signed_task_request(&self.secret, target, ticket)?;
        let mut client = self.client(target).map_err(failed)?;
        let response = self
            .channels
            .answered_in_time(&target.url, client.do_get(request))
            .await
            .map_err(failed)?;
        Ok(answer_batches(
            response.into_inner().boxed(),
            label,
            schema,
            meter,
        ))
    }

    async fn cancel_shuffles(
        &self,
        target: &TaskTarget,
        request: CancelShufflesRequest,
    ) -> Result<()> {
        let label = target.label.clone();
        let failed = |status: tonic::Status| from_status(worker_status(&label, status));
        let request = signed_cancel_request(&self.secret, target, &request)?;
        let mut client = self.client(target).map_err(failed)?;
        self.channels
            .answered_in_time(&target.url, async {
                let mut answers = client.do_action(request).await?.into_inner();
                while answers.message().await?.is_some() {}
                Ok(())
            })
            .await
            .map_err(failed)
    }

    async fn read_shard_file(&self, target: &TaskTarget, path: &str) -> Result<ShardFileChunks> {
        let label = target.label.clone();
        let failed = |status: tonic::Status| from_status(worker_status(&label, status));
        let request = signed_read_file_request(&self.secret, target, path)?;
        let mut client = self.client(target).map_err(failed)?;
        let answer = self
            .channels
            .answered_in_time(&target.url, client.do_action(request))
            .await
            .map_err(failed)?;
        Ok(file_chunks(answer.into_inner()))
    }
}
