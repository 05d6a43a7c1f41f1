//! Connections between nodes: how a Flight channel to a peer (a worker, seen from the
//! coordinator or from another worker) is set up, how long a peer may stay silent, and how a
//! failed call is reported.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tonic::transport::{Channel, Endpoint};

use crate::tls::ClusterTls;

/// How long a worker may leave a call unanswered (and its connection's keepalive pings
/// unacknowledged) before calls to it fail with `Unavailable`, unless
/// `SHARDFUSION_WORKER_TIMEOUT_SECS` says otherwise.
pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);

/// The worker timeout configured by `SHARDFUSION_WORKER_TIMEOUT_SECS`, else the default.
pub fn worker_timeout_from_env() -> Duration {
    std::env::var("SHARDFUSION_WORKER_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|secs| *secs > 0)
        .map_or(DEFAULT_WORKER_TIMEOUT, Duration::from_secs)
}

/// Largest gRPC message exchanged between nodes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// HTTP/2 flow-control window of one stream from a peer.
const STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// HTTP/2 flow-control window of a whole connection to a peer (the protocol's maximum).
const CONNECTION_WINDOW_BYTES: u32 = i32::MAX as u32;

/// The status to report for a call to worker `label` that failed: connection-level failures
/// (which tonic reports as `Unavailable`, or `Unknown` "transport error" when a connection
/// drops mid-call) say the worker is unavailable; anything else is the worker's own verdict.
pub fn worker_status(label: &str, status: tonic::Status) -> tonic::Status {
    if is_transport_failure(&status) {
        tonic::Status::unavailable(format!(
            "worker {label} is unavailable: {}",
            status.message()
        ))
    } else {
        status
    }
}

/// Whether a failed call failed in the connection (refused, reset, dropped, keepalive timed
/// out) rather than in the peer's own handling: judged by the error types in the status's
/// source chain (tonic's transport, hyper, h2, I/O), not by its words.
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    if status.code() == tonic::Code::Unavailable {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::transport::Error>()
            || error.is::<hyper::Error>()
            || error.is::<h2::Error>()
            || error.is::<std::io::Error>()
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// Lazily connected channels to peers, one per URL, shared by every call to that peer; over
/// TLS once [`PeerChannels::set_tls`] says so.
#[derive(Debug)]
pub struct PeerChannels {
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
    tls: RwLock<Option<ClusterTls>>,
}

impl PeerChannels {
    /// Channels whose keepalive pings find a silent peer within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            channels: Mutex::new(HashMap::new()),
            tls: RwLock::new(None),
        }
    }

    /// Reaches peers over TLS, trusting `tls`'s authority (`None`: plain HTTP/2). Channels
    /// opened before are dropped.
    pub fn set_tls(&self, tls: Option<ClusterTls>) {
        *self.tls.write() = tls;
        self.channels.lock().clear();
    }

    /// How long a peer may leave a call or a keepalive ping unanswered.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The channel to `url`, set up on first use. Errors name the bad address.
    pub fn channel(&self, url: &str) -> Result<Channel, String> {
        if let Some(channel) = self.channels.lock().get(url) {
            return Ok(channel.clone());
        }
        let tls = self.tls.read().clone();
        let dialled = match &tls {
            Some(_) => ClusterTls::secure_url(url),
            None => url.to_string(),
        };
        let mut endpoint =
            Endpoint::from_shared(dialled).map_err(|e| format!("bad worker address {url}: {e}"))?;
        if let Some(tls) = &tls {
            endpoint = endpoint
                .tls_config(tls.client_config())
                .map_err(|e| format!("cannot set up TLS to {url}: {e}"))?;
        }
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // Many streams share one connection per peer, and a plan may leave one unread
            // while it drains another (a join's build side before its probe side). A
            // connection window far larger than the per-stream window keeps a paused stream
            // from using up the connection's and stalling the others (HTTP/2 head-of-line
            // blocking); each stream still buffers at most its own window.
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            // A stopped or unreachable peer still holds its TCP connection open: HTTP/2
            // pings, even between calls and during a long stream, find it within the timeout
            // and fail its streams instead of letting them wait forever.
            .http2_keep_alive_interval(self.timeout / 3)
            .keep_alive_timeout(self.timeout * 2 / 3)
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        self.channels
            .lock()
            .insert(url.to_string(), channel.clone());
        Ok(channel)
    }

    /// Forgets the connection to `url`, so the next call connects anew.
    pub fn forget(&self, url: &str) {
        self.channels.lock().remove(url);
    }

    /// `call`'s answer, or `Unavailable` naming the peer if none came within the timeout
    /// (then its connection is dropped: whatever holds it up is suspect).
    pub async fn answered_in_time<T>(
        &self,
        url: &str,
        call: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer,
            Err(_) => {
                self.forget(url);
                Err(tonic::Status::unavailable(format!(
                    "worker {url} is unavailable: no answer within {} s \
                     (SHARDFUSION_WORKER_TIMEOUT_SECS)",
                    self.timeout.as_secs_f64()
                )))
            }
        }
    }
}
