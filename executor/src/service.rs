//! [`WorkerService`]: the worker's Arrow Flight service.
//!
//! - `DoGet` with a `TaskTicket`: run the fragment, stream its batches back; for a shuffle
//!   producer task, stream the one output partition asked for (`shuffle_stages`).
//! - `DoPut` with a `WriteRequest` descriptor: write the rows as one Parquet shard file and
//!   answer with a `WrittenFile`.
//!   The stream must end with the completion marker; otherwise nothing is kept.
//! - `DoAction` `shardfusion.delete_files`, `shardfusion.list_shard_files` (for orphan
//!   reconciliation), `shardfusion.analyze_files` (column statistics for `ANALYZE`),
//!   `shardfusion.copy_shard_files` (copy files from a peer, for shard moves) and
//!   `shardfusion.read_shard_file` (a peer reading one of this worker's files), and
//!   `shardfusion.ping`.
//!
//! - `DoAction` `shardfusion.prove_membership`: the one call answered without authentication,
//!   so that the coordinator can check this worker knows the secret before trusting it.
//!
//! Every other call must carry a request MAC for this worker (`auth::request_mac`), checked
//! against the call's command before the command is acted on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use parking_lot::Mutex;
use prost::Message;
use shardfusion_common::auth::{
    Audience, AuthError, Challenge, ClusterSecret, FlightMethod, RequestVerifier,
};
use shardfusion_common::exchange::flight_transport::FlightTransport;
use shardfusion_common::exchange::peer_channel::worker_timeout_from_env;
use shardfusion_common::exchange::shuffle_cancel::{
    cancel_producers, cancelling_on_early_drop, producers_in,
};
use shardfusion_common::exchange::task_report::reported;
use shardfusion_common::exchange::transport::{Transport, TransportExtension};
use shardfusion_common::ipc_bounds::checked_message;
use shardfusion_common::query_limits::{QueryMemoryLimit, query_memory_pool, task_context_in_pool};
use shardfusion_common::storage::{DataRoot, DataRootRegistry};
use shardfusion_common::tls::ClusterTls;
use shardfusion_common::wire::{
    ACTION_ANALYZE_FILES, ACTION_CANCEL_SHUFFLES, ACTION_COPY_SHARD_FILES, ACTION_DELETE_FILES,
    ACTION_LIST_SHARD_FILES, ACTION_PING, ACTION_PROVE_MEMBERSHIP, ACTION_READ_SHARD_FILE,
    ACTION_REWRITE_SHARD_FILE, ACTION_WARM_SHARD_FILES, AUTH_HEADER, AnalyzeFilesRequest,
    AnalyzeFilesResponse, CancelShufflesRequest, CopyShardFilesResponse, DeleteFilesRequest,
    PingResponse, ProveMembershipRequest, ProveMembershipResponse, ShardFileList, TaskTicket,
    WriteRequest,
};
use shardfusion_common::{ids, status};
use tonic::{Request, Response, Status, Streaming};

use crate::error::ExecutorError;
use crate::fragment::{decode_fragment, execute_fragment};
use crate::shard_inventory::{ActiveWrites, delete_shard_file, list_shard_files};
use crate::shard_writer::{FileLayout, write_shard_file};
use crate::shuffle_stages::ShuffleStages;
use crate::write_completion::require_completion;

/// The worker's Flight service over one data root.
#[derive(Clone)]
pub struct WorkerService {
    root: DataRoot,
    secret: ClusterSecret,
    /// Checks request MACs addressed to this worker's identity.
    verifier: Arc<RequestVerifier>,
    ctx: Arc<SessionContext>,
    /// Files being written now, which reconciliation must never offer for deletion.
    active_writes: ActiveWrites,
    /// Shuffle producer tasks waiting for their consumers.
    shuffles: Arc<ShuffleStages>,
    /// How this worker's fragments reach other workers.
    peers: Arc<dyn Transport>,
    /// Fragments (and shuffle partitions) streaming now.
    running: Arc<AtomicUsize>,
    /// The memory pools of the queries running here with a memory limit, by query id: the
    /// fragments of one query share one.
    query_pools: Arc<Mutex<HashMap<String, Weak<dyn MemoryPool>>>>,
}

/// Counts a fragment as running until dropped (with its stream).
struct RunningFragment(Arc<AtomicUsize>);

impl RunningFragment {
    fn start(running: &Arc<AtomicUsize>) -> Self {
        running.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(running))
    }
}

impl Drop for RunningFragment {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WorkerService {
    /// The service over `root`; its identity is the `worker_id` kept in `root`'s directory.
    pub fn try_new(root: DataRoot, secret: ClusterSecret) -> Result<Self, ExecutorError> {
        let uuid = crate::registration::worker_uuid(root.dir())?;
        let audience = Audience::worker(&uuid).map_err(|e| ExecutorError::BadRequest {
            reason: format!("{}: {e}", root.dir().join("worker_id").display()),
        })?;
        let verifier = Arc::new(RequestVerifier::new(secret.clone(), audience));
        // Fragments reach other workers (shuffle producers) with the same credential the
        // coordinator uses.
        let peers: Arc<dyn Transport> = Arc::new(FlightTransport::new(
            secret.clone(),
            worker_timeout_from_env(),
        ));
        let ctx = session(&root, Arc::clone(&peers))?;
        Ok(Self {
            root,
            secret,
            verifier,
            ctx: Arc::new(ctx),
            active_writes: ActiveWrites::default(),
            running: Arc::default(),
            query_pools: Arc::default(),
            shuffles: Arc::default(),
            peers,
        })
    }

    /// The same service, reaching other workers over TLS that trusts `tls`'s authority.
    pub fn with_cluster_tls(self, tls: ClusterTls) -> Result<Self, ExecutorError> {
        let transport = FlightTransport::new(self.secret.clone(), worker_timeout_from_env())
            .with_tls(Some(tls));
        self.with_peer_transport(Arc::new(transport))
    }

    /// The same service, its fragments reaching other workers through `transport` (an
    /// embedded cluster's in-process one).
    pub fn with_peer_transport(
        mut self,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, ExecutorError> {
        self.ctx = Arc::new(session(&self.root, Arc::clone(&transport))?);
        self.peers = transport;
        Ok(self)
    }

    /// The memory pool of the query `query_id` here: the one its other fragments use, else a
    /// new one holding `limit` bytes.
    fn query_pool(&self, query_id: &str, limit: usize) -> Arc<dyn MemoryPool> {
        let mut pools = self.query_pools.lock();
        if let Some(pool) = pools.get(query_id).and_then(Weak::upgrade) {
            return pool;
        }
        pools.retain(|_, pool| pool.strong_count() > 0);
        let pool = query_memory_pool(limit);
        pools.insert(query_id.to_string(), Arc::downgrade(&pool));
        pool
    }

    /// How many fragments (and shuffle partitions) this worker is streaming now, and how
    /// many shuffle producer stages it keeps for readers still to come: a query that ended,
    /// failed or was cancelled has none left.
    pub fn running_fragments(&self) -> usize {
        self.running.load(Ordering::Acquire) + self.shuffles.len()
    }

    /// Answers a membership challenge with this worker's identity and proof.
    fn prove_membership(&self, body: &[u8]) -> Result<arrow_flight::Result, Status> {
        let request = ProveMembershipRequest::decode(body)
            .map_err(|e| bad_request(format!("cannot decode ProveMembershipRequest: {e}")))?;
        let challenge = Challenge::from_bytes(&request.challenge)
            .ok_or_else(|| bad_request("a membership challenge must be 32 bytes"))?;
        let proof = self
            .secret
            .prove_membership(&challenge, self.verifier.audience().as_str());
        let response = ProveMembershipResponse {
            worker_uuid: proof.worker_uuid,
            proof: proof.proof,
        };
        Ok(arrow_flight::Result {
            body: response.encode_to_vec().into(),
        })
    }
}

/// The DataFusion session fragments run in: files only under `root`, peers through
/// `transport`.
fn session(
    root: &DataRoot,
    transport: Arc<dyn Transport>,
) -> Result<SessionContext, ExecutorError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(DataRootRegistry::new(root.clone())))
        .build_arc()?;
    let config = SessionConfig::new()
        .with_target_partitions(num_cpus())
        .with_extension(Arc::new(TransportExtension(transport)));
    let mut ctx = SessionContext::new_with_config_rt(config, runtime);
    // PostgreSQL's JSON functions, which fragments may call.
    shardfusion_common::json_functions::register(&mut ctx)?;
    Ok(ctx)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn bad_request(reason: impl Into<String>) -> Status {
    ExecutorError::BadRequest {
        reason: reason.into(),
    }
    .into()
}

#[tonic::async_trait]
impl FlightService for WorkerService {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "workers authenticate each request with a MAC of the cluster secret, not a handshake",
        ))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("workers do not list flights"))
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented(
            "workers take tickets from their coordinator; connect applications to the coordinator",
        ))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("workers do not poll flights"))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("workers do not serve schemas"))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        self.verifier.verify(
            request.metadata(),
            FlightMethod::DoGet,
            &[&request.get_ref().ticket],
        )?;
        let ticket = TaskTicket::decode(request.into_inner().ticket)
            .map_err(|e| bad_request(format!("cannot decode task ticket: {e}")))?;
        // A query with a memory limit draws on one pool of that size here.
        let pool = QueryMemoryLimit::from_wire(ticket.memory_limit)
            .map(|limit| (limit, self.query_pool(&ticket.query_id, limit)));
        let task_ctx = match pool {
            None => self.ctx.task_ctx(),
            pool => Arc::new(task_context_in_pool(
                &self.ctx.task_ctx(),
                ticket.query_id.clone(),
                pool,
            )),
        };
        let started = Instant::now();
        let (stream, plan, stage_key, partition, started) = match &ticket.shuffle {
            Some(output) => {
                tracing::debug!(stage = %output.stage_key, partition = output.partition, "serving shuffle partition");
                let partition = usize::try_from(output.partition)
                    .map_err(|_| bad_request("shuffle partition out of range"))?;
                let readers = usize::try_from(output.readers)
                    .map_err(|_| bad_request("shuffle readers out of range"))?;
                let served = self.shuffles.partition(
                    &output.stage_key,
                    &ticket.plan,
                    partition,
                    readers,
                    task_ctx,
                )?;
                (
                    served.stream,
                    served.plan,
                    output.stage_key.clone(),
                    output.partition,
                    served.started,
                )
            }
            None => {
                let plan = decode_fragment(&ticket.plan, &task_ctx)?;
                tracing::debug!(query_id = %ticket.query_id, "running fragment");
                let producers = producers_in(&plan);
                let stream = cancelling_on_early_drop(
                    execute_fragment(Arc::clone(&plan), task_ctx)?,
                    Arc::clone(&self.peers),
                    producers,
                );
                (stream, plan, String::new(), 0, started)
            }
        };
        let schema = stream.schema();
        let rows = Arc::new(AtomicU64::new(0));
        let running = RunningFragment::start(&self.running);
        let batches = {
            let rows = Arc::clone(&rows);
            stream.map(move |batch| match batch {
                Ok(batch) => {
                    rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    Ok(batch)
                }
                Err(e) => {
                    let _running = &running;
                    Err(FlightError::Tonic(Box::new(status::to_status(&e))))
                }
            })
        };
        let frames = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(|e| match e {
                FlightError::Tonic(status) => *status,
                other => Status::internal(other.to_string()),
            });
        let flight = reported(frames, rows, plan, stage_key, partition, started);
        Ok(Response::new(flight.boxed()))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        // The MAC covers the first message's descriptor, so it is checked once that is read;
        // a request without one is refused before reading anything.
        if request.metadata().get(AUTH_HEADER).is_none() {
            return Err(AuthError::Missing.into());
        }
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await
            .map_err(crate::error::truncated_put)?
            .ok_or_else(|| bad_request("DoPut stream was empty"))?;
        let descriptor = first
            .flight_descriptor
            .clone()
            .ok_or_else(|| bad_request("DoPut needs a descriptor carrying a WriteRequest"))?;
        self.verifier
            .verify(&metadata, FlightMethod::DoPut, &[&descriptor.cmd])?;
        let write = WriteRequest::decode(descriptor.cmd)
            .map_err(|e| bad_request(format!("cannot decode WriteRequest: {e}")))?;
        if uuid::Uuid::parse_str(&write.write_id).is_err() {
            return Err(bad_request("write_id must be a UUID"));
        }
        let path = shardfusion_common::storage::shard_file_path(
            ids::TableId(write.table_id),
            ids::ShardId(write.shard_id),
            &write.write_id,
        );
        let _writing = self.active_writes.begin(&path);
        let data = require_completion(
            futures::stream::once(async move { Ok(first) })
                .chain(stream)
                .map_err(|s| FlightError::Tonic(Box::new(crate::error::truncated_put(s))))
                .and_then(|m| futures::future::ready(checked_message(m))),
        );
        let batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data)
            .map_err(crate::error::undecodable_put);
        let layout = FileLayout {
            sort_by: (!write.sort_column.is_empty()).then_some(write.sort_column.as_str()),
            bloom_filter_columns: &write.bloom_filter_columns,
        };
        let written = write_shard_file(&self.root, &path, layout, batches).await?;
        let result = PutResult {
            app_metadata: written
                .map(|w| w.encode_to_vec())
                .unwrap_or_default()
                .into(),
        };
        Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        if request.get_ref().r#type == ACTION_PROVE_MEMBERSHIP {
            let result = self.prove_membership(&request.get_ref().body)?;
            return Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()));
        }
        let action = request.get_ref();
        self.verifier.verify(
            request.metadata(),
            FlightMethod::DoAction,
            &[action.r#type.as_bytes(), &action.body],
        )?;
        let action = request.into_inner();
        match action.r#type.as_str() {
            ACTION_PING => {
                let answer = PingResponse {
                    storage: self.root.storage_label(),
                };
                let result = arrow_flight::Result {
                    body: answer.encode_to_vec().into(),
                };
                Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
            }
            ACTION_LIST_SHARD_FILES => {
                let files = list_shard_files(&self.root, &self.active_writes)
                    .await
                    .map_err(|e| Status::internal(format!("cannot list shard files: {e}")))?;
                let result = arrow_flight::Result {
                    body: ShardFileList { files }.encode_to_vec().into(),
                };
                Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
            }
            ACTION_CANCEL_SHUFFLES => {
                let req = CancelShufflesRequest::decode(action.body).map_err(|e| {
                    bad_request(format!("cannot decode CancelShufflesRequest: {e}"))
                })?;
                // The cancelled tasks' own inputs are over too, for the same reason.
                let failure = req.failure();
                for plan in self.shuffles.cancel(&req.stage_keys, failure.clone()) {
                    cancel_producers(
                        Arc::clone(&self.peers),
                        producers_in(&plan),
                        failure.as_ref(),
                    );
                }
                Ok(Response::new(futures::stream::empty().boxed()))
            }
            ACTION_DELETE_FILES => {
                let req = DeleteFilesRequest::decode(action.body)
                    .map_err(|e| bad_request(format!("cannot decode DeleteFilesRequest: {e}")))?;
                tracing::debug!("deleting shard files {:?}", req.paths);
                for path in &req.paths {
                    delete_shard_file(&self.root, path).await?;
                }
                Ok(Response::new(futures::stream::empty().boxed()))
            }
            ACTION_ANALYZE_FILES => {
                let req = AnalyzeFilesRequest::decode(action.body)
                    .map_err(|e| bad_request(format!("cannot decode AnalyzeFilesRequest: {e}")))?;
                let files = crate::file_analysis::analyze_files(&self.root, &req.paths).await?;
                let result = arrow_flight::Result {
                    body: AnalyzeFilesResponse { files }.encode_to_vec().into(),
                };
                Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
            }
            ACTION_READ_SHARD_FILE => Ok(Response::new(
                crate::file_copy::read_shard_file(&self.root, &action.body).await?,
            )),
            ACTION_COPY_SHARD_FILES => {
                let files = crate::file_copy::copy_shard_files(
                    &self.root,
                    &self.peers,
                    &self.active_writes,
                    &action.body,
                )
                .await?;
                let result = arrow_flight::Result {
                    body: CopyShardFilesResponse { files }.encode_to_vec().into(),
                };
                Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
            }
            ACTION_WARM_SHARD_FILES => {
                let files = crate::file_warming::warm_shard_files(&self.ctx, &action.body).await?;
                let result = arrow_flight::Result {
                    body: CopyShardFilesResponse { files }.encode_to_vec().into(),
                };
                Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
            }
            ACTION_REWRITE_SHARD_FILE => {
                let response = crate::file_rewrite::rewrite_from_request(
                    &self.root,
                    &self.active_writes,
                    self.ctx.task_ctx(),
                    &action.body,
                )
                .await?;
                let result = arrow_flight::Result {
                    body: response.encode_to_vec().into(),
                };
                Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
            }
            other => Err(bad_request(format!("unknown action {other:?}"))),
        }
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.verifier
            .verify(request.metadata(), FlightMethod::ListActions, &[])?;
        let actions = [
            ACTION_PING,
            ACTION_DELETE_FILES,
            ACTION_LIST_SHARD_FILES,
            ACTION_ANALYZE_FILES,
            ACTION_CANCEL_SHUFFLES,
            ACTION_READ_SHARD_FILE,
            ACTION_COPY_SHARD_FILES,
            ACTION_WARM_SHARD_FILES,
            ACTION_REWRITE_SHARD_FILE,
            ACTION_PROVE_MEMBERSHIP,
        ]
        .map(|name| {
            Ok(ActionType {
                r#type: name.to_string(),
                description: String::new(),
            })
        });
        Ok(Response::new(futures::stream::iter(actions).boxed()))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("do_exchange is not used yet"))
    }
}
