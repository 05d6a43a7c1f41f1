//! The SQLSTATE of an error, and recognizing the retryable serialization failure that racing
//! catalog changes report.

use shardfusion_common::status::SQLSTATE_METADATA;
use tonic::{Code, Status};

/// Whether `status` is the retryable conflict: `Aborted` with SQLSTATE 40001
/// (`serialization_failure`), the only way a statement that lost a race may fail.
pub fn is_retryable_conflict(status: &Status) -> bool {
    status.code() == Code::Aborted && sqlstate(status) == Some("40001")
}

/// The SQLSTATE the server gave `status`, if any.
pub fn sqlstate(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get(SQLSTATE_METADATA)
        .and_then(|v| v.to_str().ok())
}
