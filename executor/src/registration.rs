//! Announcing a worker to its coordinator, as `citus_add_node` would.
//!
//! The announcement carries a request MAC for the coordinator; before adding the worker, the
//! coordinator in turn checks the worker's membership proof at the announced address.
//!
//! The worker keeps a stable identity in `<data-dir>/worker_id`, so after a restart on another
//! port the coordinator updates the node instead of adding a new, empty one.

use std::path::Path;
use std::time::Duration;

use arrow_flight::Action;
use arrow_flight::flight_service_client::FlightServiceClient;
use prost::Message;
use shardfusion_common::auth::{Audience, ClusterSecret, FlightMethod};
use shardfusion_common::tls::ClusterTls;
use shardfusion_common::wire::{
    ACTION_REGISTER_WORKER, RegisterWorkerRequest, RegisterWorkerResponse,
};
use tonic::Request;

use crate::error::ExecutorError;

/// Reads or creates the worker's stable identity.
pub fn worker_uuid(data_dir: &Path) -> Result<String, ExecutorError> {
    let path = data_dir.join("worker_id");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let id = existing.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| ExecutorError::BadRequest {
        reason: format!("cannot create {}: {e}", data_dir.display()),
    })?;
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, &id).map_err(|e| ExecutorError::BadRequest {
        reason: format!("cannot write {}: {e}", path.display()),
    })?;
    Ok(id)
}

/// Registers with the coordinator at `coordinator_url`, retrying until `deadline` passes.
/// An `https://` coordinator is reached over TLS that trusts `tls`'s authority.
pub async fn register(
    coordinator_url: &str,
    secret: &ClusterSecret,
    tls: Option<&ClusterTls>,
    request: RegisterWorkerRequest,
    deadline: Duration,
) -> Result<RegisterWorkerResponse, ExecutorError> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match try_register(coordinator_url, secret, tls, &request).await {
            Ok(response) => return Ok(response),
            Err(e) if e.code() == tonic::Code::Unavailable && started.elapsed() < deadline => {
                tracing::info!("coordinator at {coordinator_url} not reachable yet: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                return Err(ExecutorError::BadRequest {
                    reason: format!(
                        "could not register with the coordinator at {coordinator_url}: {}",
                        e.message()
                    ),
                });
            }
        }
    }
}

async fn try_register(
    coordinator_url: &str,
    secret: &ClusterSecret,
    tls: Option<&ClusterTls>,
    request: &RegisterWorkerRequest,
) -> Result<RegisterWorkerResponse, tonic::Status> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(coordinator_url.to_string())
        .map_err(|e| tonic::Status::invalid_argument(format!("bad coordinator URL: {e}")))?;
    match (coordinator_url.starts_with("https://"), tls) {
        (true, Some(tls)) => {
            endpoint = endpoint
                .tls_config(tls.client_config())
                .map_err(|e| tonic::Status::invalid_argument(format!("cannot set up TLS: {e}")))?;
        }
        (true, None) => {
            return Err(tonic::Status::invalid_argument(
                "an https:// coordinator needs --tls-ca, the authority that signed its \
                 certificate",
            ));
        }
        (false, _) => {}
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = FlightServiceClient::new(channel);
    let action = Action {
        r#type: ACTION_REGISTER_WORKER.to_string(),
        body: request.encode_to_vec().into(),
    };
    let mut call = Request::new(action.clone());
    secret.sign(
        call.metadata_mut(),
        FlightMethod::DoAction,
        &Audience::coordinator(),
        &[action.r#type.as_bytes(), &action.body],
    );
    let mut results = client.do_action(call).await?.into_inner();
    let result = results
        .message()
        .await?
        .ok_or_else(|| tonic::Status::internal("coordinator sent no registration result"))?;
    RegisterWorkerResponse::decode(result.body)
        .map_err(|e| tonic::Status::internal(format!("bad registration result: {e}")))
}
