//! Errors of the worker and the gRPC status each becomes.
//!
//! Statuses never carry the worker's absolute paths (see
//! `shardfusion_common::path_redaction`): the coordinator hands them on to clients.

use arrow_flight::error::FlightError;
use datafusion::error::DataFusionError;
use shardfusion_common::path_redaction::redact_status;
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
    #[error("reading shard file {path} for ANALYZE failed: {reason}")]
    Analyze { path: String, reason: String },
    #[error("copying shard file {path} failed: {reason}")]
    Copy { path: String, reason: String },
    /// A copy that arrived but does not match its source or the catalog.
    #[error("the copy of shard file {path} does not verify: {reason}")]
    CopyMismatch { path: String, reason: String },
    #[error("taking over shard file {path} from the shared storage failed: {reason}")]
    TakeOver { path: String, reason: String },
    /// A file in shared storage that does not match what the catalog records.
    #[error("shard file {path} in the shared storage does not match the catalog: {reason}")]
    TakeOverMismatch { path: String, reason: String },
    /// Work refused because its statement already failed elsewhere: it reports that failure.
    #[error("{what} cannot be served: its statement failed: {}", failure.message())]
    StatementFailed { what: String, failure: Status },
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl From<ExecutorError> for Status {
    fn from(error: ExecutorError) -> Self {
        let status = match &error {
            ExecutorError::BadRequest { .. } => Status::invalid_argument(error.to_string()),
            ExecutorError::Forbidden { .. } => Status::permission_denied(error.to_string()),
            ExecutorError::Storage(e) if e.is_refused_path() => {
                Status::permission_denied(error.to_string())
            }
            ExecutorError::Storage(_) => Status::internal(error.to_string()),
            ExecutorError::Write { .. } | ExecutorError::Analyze { .. } => {
                Status::internal(error.to_string())
            }
            // A peer that cannot be read, or a copy that does not match its source: the move
            // that asked for it keeps the old placement and may be retried.
            ExecutorError::Copy { .. } => Status::unavailable(error.to_string()),
            ExecutorError::CopyMismatch { .. } => Status::data_loss(error.to_string()),
            ExecutorError::TakeOver { .. } => Status::unavailable(error.to_string()),
            ExecutorError::TakeOverMismatch { .. } => Status::data_loss(error.to_string()),
            ExecutorError::StatementFailed { failure, .. } => {
                Status::new(failure.code(), error.to_string())
            }
            ExecutorError::DataFusion(e) => shardfusion_common::status::to_status(e),
        };
        redact_status(status)
    }
}

/// The error a `DoPut` stream ends with when its request stream fails: the sender cut it off
/// (`Unexpected EOF decoding stream`, a reset) or sent something that is not a gRPC message.
/// Whatever tonic calls it (`Internal`, `Cancelled`, `Unknown`), for this worker the request
/// was incomplete, which is `InvalidArgument`.
pub fn truncated_put(status: Status) -> Status {
    Status::invalid_argument(format!(
        "the DoPut stream was cut off before it ended: {}",
        status.message()
    ))
}

/// The error of `DoPut` data that arrived but does not decode as Arrow IPC: the sender's
/// fault, so `InvalidArgument` rather than the `Internal` an unknown error would become.
pub fn undecodable_put(error: FlightError) -> DataFusionError {
    match error {
        FlightError::Tonic(status) => shardfusion_common::status::from_status(*status),
        other => shardfusion_common::status::from_status(Status::invalid_argument(format!(
            "the DoPut stream does not decode as Arrow data: {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use shardfusion_common::status::to_status;
    use tonic::Code;

    use super::*;

    #[test]
    fn cut_off_put_streams_are_invalid_argument() {
        // What tonic reports for a frame cut short, and for a stream the sender reset.
        for status in [
            Status::internal("Unexpected EOF decoding stream."),
            Status::cancelled("h2 protocol error: stream reset"),
        ] {
            let status = truncated_put(status);
            assert_eq!(status.code(), Code::InvalidArgument, "{status}");
            assert!(status.message().contains("cut off"), "{status}");
        }
    }

    #[test]
    fn undecodable_put_data_is_invalid_argument() {
        let e = undecodable_put(FlightError::DecodeError("Unexpected EOF".into()));
        assert_eq!(to_status(&e).code(), Code::InvalidArgument);
        let e = undecodable_put(FlightError::Arrow(
            datafusion::arrow::error::ArrowError::IpcError("Buffer out of bounds".into()),
        ));
        assert_eq!(to_status(&e).code(), Code::InvalidArgument);
        // A status already decided upstream (e.g. the missing completion marker) is kept.
        let e = undecodable_put(FlightError::Tonic(Box::new(Status::aborted("conflict"))));
        assert_eq!(to_status(&e).code(), Code::Aborted);
    }

    #[test]
    fn refused_fragment_paths_are_permission_denied() {
        let refused = shardfusion_common::storage::validate_relative_path("../../etc/passwd")
            .expect_err("refused");
        let e = ExecutorError::DataFusion(DataFusionError::External(Box::new(refused)));
        assert_eq!(Status::from(e).code(), Code::PermissionDenied);
    }
}
