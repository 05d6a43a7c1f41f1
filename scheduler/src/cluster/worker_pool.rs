//! Connections from the coordinator to its workers.
//!
//! One lazily-connected gRPC channel per worker address, reused by every statement. Every
//! request carries a fresh request MAC addressed to the worker's identity
//! (`shardfusion_common::auth::request_mac`); the secret itself never crosses the wire. The
//! identity of an address is learnt from its membership proof, asked before anything derived
//! from the secret is sent there (see [`WorkerPool::prove_membership`]).

use std::collections::HashMap;
use std::time::Duration;

use arrow_flight::client::FlightClient;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightData, Ticket};
use parking_lot::Mutex;
use prost::Message;
use shardfusion_common::auth::{
    Audience, AuthError, Challenge, ClusterSecret, FlightMethod, MembershipProof, RequestVerifier,
};
use shardfusion_common::wire::{
    ACTION_CANCEL_SHUFFLES, ACTION_DELETE_FILES, ACTION_LIST_SHARD_FILES, ACTION_PROVE_MEMBERSHIP,
    CancelShufflesRequest, DeleteFilesRequest, ProveMembershipRequest, ProveMembershipResponse,
    ShardFileEntry, ShardFileList,
};
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use shardfusion_common::exchange::task_answer::answer_batches;
use shardfusion_common::exchange::transport::{TaskTarget, Transport, WireMeter};
use shardfusion_common::status::from_status;

use crate::error::{Result, SchedulerError};

pub use shardfusion_common::exchange::peer_channel::{
    DEFAULT_WORKER_TIMEOUT, MAX_MESSAGE_BYTES, PeerChannels, is_transport_failure, worker_status,
    worker_timeout_from_env,
};

/// How long a host may take to answer a membership challenge.
const PROOF_TIMEOUT: Duration = Duration::from_secs(10);

/// Channels to workers, keyed by URL, and the identity each URL proved.
#[derive(Debug)]
pub struct WorkerPool {
    secret: ClusterSecret,
    /// Channels to the workers; how long a worker may leave a call or a keepalive ping
    /// unanswered.
    channels: PeerChannels,
    /// The audience of requests to each URL: the identity its host proved.
    identities: Mutex<HashMap<String, Audience>>,
    /// Checks the requests workers send to the coordinator (registrations).
    from_workers: RequestVerifier,
}

impl WorkerPool {
    pub fn new(secret: ClusterSecret) -> Self {
        Self::with_timeout(secret, worker_timeout_from_env())
    }

    /// A pool whose calls fail with `Unavailable` once a worker leaves them (or its
    /// connection's keepalive pings) unanswered for `timeout`.
    pub fn with_timeout(secret: ClusterSecret, timeout: Duration) -> Self {
        Self {
            from_workers: RequestVerifier::new(secret.clone(), Audience::coordinator()),
            secret,
            channels: PeerChannels::new(timeout),
            identities: Mutex::new(HashMap::new()),
        }
    }

    /// Reaches the workers over TLS, trusting `tls`'s authority (`None`: plain HTTP/2).
    pub fn set_tls(&self, tls: Option<shardfusion_common::tls::ClusterTls>) {
        self.channels.set_tls(tls);
    }

    /// Checks a request a worker sent to the coordinator: a request MAC for the coordinator
    /// over `method` and command `parts`.
    pub fn verify_from_worker(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        method: FlightMethod,
        parts: &[&[u8]],
    ) -> std::result::Result<(), AuthError> {
        self.from_workers.verify(metadata, method, parts)
    }

    fn channel(&self, url: &str) -> Result<Channel> {
        self.channels.channel(url).map_err(SchedulerError::invalid)
    }

    fn raw_client(&self, url: &str) -> std::result::Result<FlightServiceClient<Channel>, Status> {
        Ok(
            FlightServiceClient::new(self.channel(url).map_err(Status::from)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
    }

    /// Asks the host at `url` to prove that it knows the cluster secret, with a fresh random
    /// challenge, and returns the identity it proved. Nothing derived from the secret is sent.
    /// Once proved, requests to `url` are addressed to that identity.
    ///
    /// Errors: `Unavailable` if the host cannot be reached, `PermissionDenied` if it answers
    /// without a valid proof.
    pub async fn prove_membership(&self, url: &str) -> std::result::Result<Audience, Status> {
        let challenge = Challenge::random();
        let body = ProveMembershipRequest {
            challenge: challenge.as_bytes().to_vec(),
        }
        .encode_to_vec();
        let mut client = self.raw_client(url)?;
        let ask = async {
            let action = Action::new(ACTION_PROVE_MEMBERSHIP, body);
            let mut results = client.do_action(Request::new(action)).await?.into_inner();
            results.message().await
        };
        let not_a_member = |why: &str| {
            Status::permission_denied(format!(
                "{url} did not prove that it knows this cluster's secret ({why}): it is not a \
                 ShardFusion worker of this cluster, or it runs with another \
                 --cluster-secret / SHARDFUSION_CLUSTER_SECRET"
            ))
        };
        let answer = match tokio::time::timeout(PROOF_TIMEOUT, ask).await {
            Err(_) => {
                return Err(Status::unavailable(format!(
                    "{url} did not answer the membership challenge within {} s",
                    PROOF_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(status)) => {
                let status = worker_status(url, status);
                if status.code() == tonic::Code::Unavailable {
                    return Err(status);
                }
                return Err(not_a_member(status.message()));
            }
            Ok(Ok(None)) => return Err(not_a_member("no answer")),
            Ok(Ok(Some(answer))) => answer,
        };
        let answer = ProveMembershipResponse::decode(answer.body)
            .map_err(|_| not_a_member("unreadable answer"))?;
        let proof = MembershipProof {
            worker_uuid: answer.worker_uuid,
            proof: answer.proof,
        };
        if !self.secret.check_membership(&challenge, &proof) {
            return Err(not_a_member("wrong proof"));
        }
        let audience =
            Audience::worker(&proof.worker_uuid).map_err(|_| not_a_member("invalid identity"))?;
        self.identities
            .lock()
            .insert(url.to_string(), audience.clone());
        Ok(audience)
    }

    /// Forgets what is known about `url` (its node was removed).
    pub fn forget(&self, url: &str) {
        self.identities.lock().remove(url);
        self.channels.forget(url);
    }

    /// The identity requests to `url` are addressed to, proving it first if unknown.
    async fn audience(&self, url: &str) -> std::result::Result<Audience, Status> {
        if let Some(audience) = self.identities.lock().get(url) {
            return Ok(audience.clone());
        }
        self.prove_membership(url).await
    }

    /// Where a task for the worker at `url` goes, for a peer to reach it: its address and
    /// the identity it proved (proving it first if unknown).
    pub async fn target(&self, url: &str, label: &str) -> std::result::Result<TaskTarget, Status> {
        let audience = self.audience(url).await?;
        Ok(TaskTarget {
            url: url.to_string(),
            audience: audience.as_str().to_string(),
            label: label.to_string(),
        })
    }

    /// A Flight client for exactly one `method` call to the worker at `url` whose command is
    /// `parts` (see `FlightMethod`'s callers for what the command of each call is).
    pub async fn signed_client(
        &self,
        url: &str,
        method: FlightMethod,
        parts: &[&[u8]],
    ) -> std::result::Result<FlightClient, Status> {
        let audience = self.audience(url).await?;
        let mut client = FlightClient::new_from_inner(self.raw_client(url)?);
        self.secret
            .sign(client.metadata_mut(), method, &audience, parts);
        Ok(client)
    }

    /// Runs a fragment: `DoGet` with `ticket` on the worker at `url`.
    pub async fn do_get(
        &self,
        url: &str,
        ticket: Ticket,
    ) -> std::result::Result<tonic::Response<Streaming<FlightData>>, Status> {
        let audience = self.audience(url).await?;
        let attempt = || async {
            let mut client = self.raw_client(url)?;
            let mut request = Request::new(ticket.clone());
            self.secret.sign(
                request.metadata_mut(),
                FlightMethod::DoGet,
                &audience,
                &[&ticket.ticket],
            );
            self.answered_in_time(url, client.do_get(request)).await
        };
        // A fragment only reads, so it may be repeated.
        self.retried_on_fresh_connection(url, attempt).await
    }

    /// Runs `attempt`, a call that may be repeated, once more on a fresh connection if it
    /// failed in the connection before the timeout (e.g. on one left over from before the
    /// worker restarted). A call that timed out is not repeated.
    async fn retried_on_fresh_connection<T, Fut>(
        &self,
        url: &str,
        attempt: impl Fn() -> Fut,
    ) -> std::result::Result<T, Status>
    where
        Fut: std::future::Future<Output = std::result::Result<T, Status>>,
    {
        let started = tokio::time::Instant::now();
        match attempt().await {
            Err(status)
                if is_transport_failure(&status) && started.elapsed() < self.channels.timeout() =>
            {
                self.drop_channel(url);
                attempt().await
            }
            other => other,
        }
    }

    /// `call`'s answer, or `Unavailable` naming the worker if none came within the timeout.
    async fn answered_in_time<T>(
        &self,
        url: &str,
        call: impl std::future::Future<Output = std::result::Result<T, Status>>,
    ) -> std::result::Result<T, Status> {
        self.channels.answered_in_time(url, call).await
    }

    /// Forgets the connection to `url`, so the next call connects anew.
    fn drop_channel(&self, url: &str) {
        self.channels.forget(url);
    }

    /// Runs `action` on the worker at `url`, collecting its results.
    pub async fn do_action(
        &self,
        url: &str,
        action: Action,
    ) -> std::result::Result<Vec<arrow_flight::Result>, Status> {
        let audience = self.audience(url).await?;
        let attempt = || async {
            let mut client = self.raw_client(url)?;
            let mut request = Request::new(action.clone());
            self.secret.sign(
                request.metadata_mut(),
                FlightMethod::DoAction,
                &audience,
                &[action.r#type.as_bytes(), &action.body],
            );
            self.answered_in_time(url, async {
                let mut stream = client.do_action(request).await?.into_inner();
                let mut results = Vec::new();
                while let Some(result) = stream.message().await? {
                    results.push(result);
                }
                Ok(results)
            })
            .await
        };
        // The cluster's actions (list, delete, ping) may be repeated.
        self.retried_on_fresh_connection(url, attempt).await
    }

    /// Deletes files on a worker. Files already gone count as deleted.
    pub async fn delete_files(&self, url: &str, paths: Vec<String>) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let body = DeleteFilesRequest { paths }.encode_to_vec();
        self.do_action(url, Action::new(ACTION_DELETE_FILES, body))
            .await
            .map_err(|status| SchedulerError::Worker {
                node: url.to_string(),
                status: worker_status(url, status),
            })?;
        Ok(())
    }

    /// The shard files on a worker's disk that it is not writing, with their ages.
    pub async fn list_shard_files(&self, url: &str) -> Result<Vec<ShardFileEntry>> {
        let results = self
            .do_action(url, Action::new(ACTION_LIST_SHARD_FILES, Vec::new()))
            .await
            .map_err(|status| SchedulerError::Worker {
                node: url.to_string(),
                status: worker_status(url, status),
            })?;
        let mut files = Vec::new();
        for result in results {
            let list = ShardFileList::decode(result.body).map_err(|e| SchedulerError::Worker {
                node: url.to_string(),
                status: Status::internal(format!("bad shard file list: {e}")),
            })?;
            files.extend(list.files);
        }
        Ok(files)
    }
}

/// The coordinator's tasks to its workers: `DoGet` with a request MAC, retried once on a
/// fresh connection when it failed in the connection (see [`WorkerPool::do_get`]).
#[async_trait::async_trait]
impl Transport for WorkerPool {
    async fn run_task(
        &self,
        target: &TaskTarget,
        ticket: Vec<u8>,
        schema: SchemaRef,
        meter: WireMeter,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        let response = self
            .do_get(&target.url, Ticket::new(ticket))
            .await
            .map_err(|s| from_status(worker_status(&target.label, s)))?;
        Ok(answer_batches(
            response.into_inner().boxed(),
            target.label.clone(),
            schema,
            meter,
        ))
    }

    async fn cancel_shuffles(
        &self,
        target: &TaskTarget,
        request: CancelShufflesRequest,
    ) -> datafusion::error::Result<()> {
        let body = request.encode_to_vec();
        self.do_action(&target.url, Action::new(ACTION_CANCEL_SHUFFLES, body))
            .await
            .map(|_| ())
            .map_err(|s| from_status(worker_status(&target.label, s)))
    }
}
