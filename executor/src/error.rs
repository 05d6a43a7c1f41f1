//! Errors of the worker and the gRPC status each becomes.

use datafusion::error::DataFusionError;
use shardfusion_common::storage::StorageError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("malformed request: {reason}")]
    BadRequest { reason: String },
    #[error("fragment refused: {reason}")]
    Forbidden { reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("writing shard file {path} failed: {reason}")]
    Write { path: String, reason: String },
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl From<ExecutorError> for Status {
    fn from(error: ExecutorError) -> Self {
        match &error {
            ExecutorError::BadRequest { .. } => Status::invalid_argument(error.to_string()),
            ExecutorError::Forbidden { .. } => Status::permission_denied(error.to_string()),
            ExecutorError::Storage(StorageError::PathOutsideRoot { .. }) => {
                Status::permission_denied(error.to_string())
            }
            ExecutorError::Storage(_) => Status::internal(error.to_string()),
            ExecutorError::Write { .. } => Status::internal(error.to_string()),
            ExecutorError::DataFusion(e) => shardfusion_common::status::to_status(e),
        }
    }
}
