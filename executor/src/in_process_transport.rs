//! [`InProcessTransport`]: tasks for workers that live in this same process (an embedded
//! cluster) handed to their `WorkerService` directly, with no socket in between. Each call runs
//! on the target worker's own runtime, so workers keep their own threads, and it carries the
//! same request MAC a Flight call would, so the worker checks it as usual. Only the data path
//! changes: what the worker answers (Flight messages) is decoded exactly as over the network.

use std::collections::HashMap;

use arrow_flight::flight_service_server::FlightService;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use parking_lot::RwLock;
use shardfusion_common::auth::ClusterSecret;
use shardfusion_common::exchange::task_answer::answer_batches;
use shardfusion_common::exchange::transport::{
    ShardFileChunks, TaskTarget, Transport, WireMeter, file_chunks, signed_cancel_request,
    signed_read_file_request, signed_task_request,
};
use shardfusion_common::status::from_status;
use shardfusion_common::wire::CancelShufflesRequest;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::service::WorkerService;

/// See the module docs.
pub struct InProcessTransport {
    secret: ClusterSecret,
    workers: RwLock<HashMap<String, (WorkerService, Handle)>>,
}

impl InProcessTransport {
    /// A transport signing its tasks with `secret`, reaching no worker yet.
    pub fn new(secret: ClusterSecret) -> Self {
        Self {
            secret,
            workers: RwLock::default(),
        }
    }

    /// Tasks for `url` go to `service`, run on `runtime`.
    pub fn register(&self, url: &str, service: WorkerService, runtime: Handle) {
        self.workers
            .write()
            .insert(url.to_string(), (service, runtime));
    }

    /// Tasks for `url` fail from now on (its worker stopped).
    pub fn unregister(&self, url: &str) {
        self.workers.write().remove(url);
    }
}

impl std::fmt::Debug for InProcessTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.workers.read().keys().cloned().collect();
        f.debug_struct("InProcessTransport")
            .field("workers", &urls)
            .finish_non_exhaustive()
    }
}

/// Aborts the worker-side call when the answer's reader goes away.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl Transport for InProcessTransport {
    async fn run_task(
        &self,
        target: &TaskTarget,
        ticket: Vec<u8>,
        schema: SchemaRef,
        meter: WireMeter,
    ) -> Result<SendableRecordBatchStream> {
        let unavailable = |why: String| {
            from_status(Status::unavailable(format!(
                "worker {} is unavailable: {why}",
                target.label
            )))
        };
        let Some((service, runtime)) = self.workers.read().get(&target.url).cloned() else {
            return Err(unavailable("it is not running in this process".into()));
        };
        let request = signed_task_request(&self.secret, target, ticket)?;
        // Forward the answer from the worker's runtime; a small channel keeps it streaming
        // with backpressure.
        let (frames, receiver) = mpsc::channel(2);
        let call = runtime.spawn(async move {
            match service.do_get(request).await {
                Ok(answer) => {
                    let mut answer = answer.into_inner();
                    while let Some(frame) = answer.next().await {
                        if frames.send(frame).await.is_err() {
                            break;
                        }
                    }
                }
                Err(status) => {
                    let _ = frames.send(Err(status)).await;
                }
            }
        });
        let guard = AbortOnDrop(call.abort_handle());
        let answer = ReceiverStream::new(receiver).map(move |frame| {
            let _ = &guard;
            frame
        });
        Ok(answer_batches(
            answer.boxed(),
            target.label.clone(),
            schema,
            meter,
        ))
    }

    async fn cancel_shuffles(
        &self,
        target: &TaskTarget,
        request: CancelShufflesRequest,
    ) -> Result<()> {
        let Some((service, runtime)) = self.workers.read().get(&target.url).cloned() else {
            // A worker that is gone runs nothing any more.
            return Ok(());
        };
        let request = signed_cancel_request(&self.secret, target, &request)?;
        let answer = runtime
            .spawn(async move {
                let mut answers = service.do_action(request).await?.into_inner();
                while answers.next().await.transpose()?.is_some() {}
                Ok::<_, Status>(())
            })
            .await
            .map_err(|e| from_status(Status::internal(format!("cancel task failed: {e}"))))?;
        answer.map_err(from_status)
    }

    async fn read_shard_file(&self, target: &TaskTarget, path: &str) -> Result<ShardFileChunks> {
        let Some((service, runtime)) = self.workers.read().get(&target.url).cloned() else {
            return Err(from_status(Status::unavailable(format!(
                "worker {} is unavailable: it is not running in this process",
                target.label
            ))));
        };
        let request = signed_read_file_request(&self.secret, target, path)?;
        let (chunks, receiver) = mpsc::channel(2);
        let call = runtime.spawn(async move {
            match service.do_action(request).await {
                Ok(answer) => {
                    let mut answer = answer.into_inner();
                    while let Some(chunk) = answer.next().await {
                        if chunks.send(chunk).await.is_err() {
                            break;
                        }
                    }
                }
                Err(status) => {
                    let _ = chunks.send(Err(status)).await;
                }
            }
        });
        let guard = AbortOnDrop(call.abort_handle());
        let answer = ReceiverStream::new(receiver).map(move |chunk| {
            let _ = &guard;
            chunk
        });
        Ok(file_chunks(answer))
    }
}
