//! Connections from the coordinator to its workers.
//!
//! One lazily-connected gRPC channel per worker address, reused by every statement; every
//! request carries the cluster secret.

use std::collections::HashMap;
use std::time::Duration;

use arrow_flight::Action;
use arrow_flight::client::FlightClient;
use parking_lot::Mutex;
use prost::Message;
use shardfusion_common::auth::ClusterSecret;
use shardfusion_common::wire::{ACTION_DELETE_FILES, CLUSTER_SECRET_HEADER, DeleteFilesRequest};
use tonic::transport::{Channel, Endpoint};

use crate::error::{Result, SchedulerError};

/// The status to report for a worker call that failed: connection-level failures (which tonic
/// reports as `Unavailable`, or `Unknown` "transport error" when a connection drops mid-call)
/// say the worker is unavailable; anything else is the worker's own verdict.
pub fn worker_status(label: &str, status: tonic::Status) -> tonic::Status {
    let transport = status.code() == tonic::Code::Unavailable
        || (status.code() == tonic::Code::Unknown
            && status.message().to_ascii_lowercase().contains("transport"));
    if transport {
        tonic::Status::unavailable(format!(
            "worker {label} is unavailable: {}",
            status.message()
        ))
    } else {
        status
    }
}

/// Largest gRPC message exchanged with workers.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// HTTP/2 flow-control window of one fragment stream from a worker.
const STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// HTTP/2 flow-control window of a whole connection to a worker (the protocol's maximum).
const CONNECTION_WINDOW_BYTES: u32 = i32::MAX as u32;

/// Channels to workers, keyed by URL.
#[derive(Debug)]
pub struct WorkerPool {
    secret: ClusterSecret,
    channels: Mutex<HashMap<String, Channel>>,
}

impl WorkerPool {
    pub fn new(secret: ClusterSecret) -> Self {
        Self {
            secret,
            channels: Mutex::new(HashMap::new()),
        }
    }

    pub fn secret(&self) -> &ClusterSecret {
        &self.secret
    }

    fn channel(&self, url: &str) -> Result<Channel> {
        if let Some(channel) = self.channels.lock().get(url) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| SchedulerError::invalid(format!("bad worker address {url}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // Many fragment streams share one connection per worker, and a plan may leave one
            // unread while it drains another (a join's build side before its probe side). A
            // connection window far larger than the per-stream window keeps a paused stream
            // from using up the connection's and stalling the others (HTTP/2 head-of-line
            // blocking); each stream still buffers at most its own window.
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
        let channel = endpoint.connect_lazy();
        self.channels
            .lock()
            .insert(url.to_string(), channel.clone());
        Ok(channel)
    }

    /// The plain Flight service client for `url`; requests need [`ClusterSecret::attach`].
    pub fn raw_client(
        &self,
        url: &str,
    ) -> Result<arrow_flight::flight_service_client::FlightServiceClient<Channel>> {
        Ok(
            arrow_flight::flight_service_client::FlightServiceClient::new(self.channel(url)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
    }

    /// A Flight client for the worker at `url`, with the cluster secret attached.
    pub fn client(&self, url: &str) -> Result<FlightClient> {
        let channel = self.channel(url)?;
        let inner = arrow_flight::flight_service_client::FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut client = FlightClient::new_from_inner(inner);
        client
            .add_header(CLUSTER_SECRET_HEADER, self.secret.as_str())
            .map_err(|e| SchedulerError::invalid(format!("bad cluster secret: {e}")))?;
        Ok(client)
    }

    /// Deletes files on a worker; failures are logged, since the files are already garbage.
    pub async fn delete_files(&self, url: &str, paths: Vec<String>) {
        if paths.is_empty() {
            return;
        }
        let result = async {
            let mut client = self.client(url)?;
            let body = DeleteFilesRequest { paths }.encode_to_vec();
            let mut stream = client
                .do_action(Action::new(ACTION_DELETE_FILES, body))
                .await
                .map_err(|e| SchedulerError::Worker {
                    node: url.to_string(),
                    status: tonic::Status::unavailable(e.to_string()),
                })?;
            use futures::StreamExt;
            while stream.next().await.is_some() {}
            Ok::<_, SchedulerError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!("could not delete garbage files on {url}: {e}");
        }
    }
}
