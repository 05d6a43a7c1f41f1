//! Mapping between DataFusion errors and gRPC statuses.
//!
//! Errors cross the network as a `tonic::Status` whose code says whose fault it is
//! (`InvalidArgument`, `NotFound`, ... for the user; `Internal`, `Unavailable` for us), and
//! they come back out as the same `Status` wrapped in `DataFusionError::External`, so a worker's
//! verdict reaches the application unchanged.

use arrow_flight::error::FlightError;
use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use tonic::{Code, Status};

use crate::path_redaction::redact;
use crate::storage::StorageError;

/// gRPC metadata key carrying the PostgreSQL SQLSTATE of an error, when one applies, so that
/// clients can tell bad data (class 22/23) from a bad statement (class 42) as Postgres
/// drivers do.
pub const SQLSTATE_METADATA: &str = "x-shardfusion-sqlstate";

/// `status` with `sqlstate` attached (see [`SQLSTATE_METADATA`]).
pub fn with_sqlstate(mut status: Status, sqlstate: &'static str) -> Status {
    status.metadata_mut().insert(
        SQLSTATE_METADATA,
        tonic::metadata::MetadataValue::from_static(sqlstate),
    );
    status
}

/// The gRPC status that describes `error` to an application, without this node's absolute
/// paths (see [`crate::path_redaction`]).
pub fn to_status(error: &DataFusionError) -> Status {
    // A peer's verdict (a worker's status relayed through a shuffle or a fragment) goes on
    // as it came: its code, message and SQLSTATE.
    if let Some(status) = find_status(error) {
        return status.clone();
    }
    let message = error.strip_backtrace();
    let status = Status::new(code_of(error), redact(&message));
    match sqlstate_of(error) {
        Some(sqlstate) => with_sqlstate(status, sqlstate),
        None => status,
    }
}

/// The SQLSTATE of errors whose class is clear: a bad statement (42) or bad data (22).
fn sqlstate_of(error: &DataFusionError) -> Option<&'static str> {
    match error {
        DataFusionError::SQL(..) => Some("42601"),
        DataFusionError::Plan(_) => Some("42000"),
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            SchemaError::FieldNotFound { .. } => Some("42703"),
            _ => Some("42000"),
        },
        DataFusionError::ArrowError(e, _) => arrow_sqlstate(e),
        // out_of_memory: the query's memory limit (or the process's pool) refused it.
        DataFusionError::ResourcesExhausted(_) => Some("53200"),
        DataFusionError::External(inner) => {
            inner.downcast_ref::<ArrowError>().and_then(arrow_sqlstate)
        }
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            sqlstate_of(inner)
        }
        DataFusionError::Shared(inner) => sqlstate_of(inner),
        _ => None,
    }
}

fn arrow_sqlstate(error: &ArrowError) -> Option<&'static str> {
    match error {
        ArrowError::CastError(_) | ArrowError::ParseError(_) => Some("22P02"),
        ArrowError::ArithmeticOverflow(_) => Some("22003"),
        ArrowError::DivideByZero => Some("22012"),
        _ => None,
    }
}

fn code_of(error: &DataFusionError) -> Code {
    match error {
        DataFusionError::SQL(..) => Code::InvalidArgument,
        // A statement DataFusion cannot plan. Missing tables are refused as typed errors
        // before DataFusion plans (the coordinator checks them); no code is read from words.
        DataFusionError::Plan(_) => Code::InvalidArgument,
        DataFusionError::Configuration(_) => Code::InvalidArgument,
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            SchemaError::FieldNotFound { .. } => Code::NotFound,
            _ => Code::InvalidArgument,
        },
        DataFusionError::Execution(_) => Code::InvalidArgument,
        DataFusionError::NotImplemented(_) => Code::Unimplemented,
        DataFusionError::ResourcesExhausted(_) => Code::ResourceExhausted,
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            ArrowError::ExternalError(inner) => external_code(inner.as_ref()),
            ArrowError::CastError(_)
            | ArrowError::ParseError(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::ComputeError(_)
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::DivideByZero
            | ArrowError::SchemaError(_) => Code::InvalidArgument,
            _ => Code::Internal,
        },
        DataFusionError::External(inner) => external_code(inner.as_ref()),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            code_of(inner)
        }
        DataFusionError::Shared(inner) => code_of(inner),
        DataFusionError::Collection(errors) => {
            errors.first().map(code_of).unwrap_or(Code::Internal)
        }
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => Code::Unavailable,
        _ => Code::Internal,
    }
}

fn external_code(inner: &(dyn std::error::Error + Send + Sync + 'static)) -> Code {
    if let Some(status) = inner.downcast_ref::<Status>() {
        return status.code();
    }
    if let Some(df) = inner.downcast_ref::<DataFusionError>() {
        return code_of(df);
    }
    if let Some(arrow) = inner.downcast_ref::<ArrowError>() {
        return code_of(&DataFusionError::ArrowError(
            Box::new(clone_arrow(arrow)),
            None,
        ));
    }
    if let Some(storage) = inner.downcast_ref::<StorageError>() {
        // A path outside the data directory is refused, not broken.
        return if storage.is_refused_path() {
            Code::PermissionDenied
        } else {
            Code::Internal
        };
    }
    if let Some(flight) = inner.downcast_ref::<FlightError>() {
        return match flight {
            FlightError::Tonic(status) => status.code(),
            // Flight data that does not decode was sent wrong: the sender's fault.
            FlightError::DecodeError(_) | FlightError::ProtocolError(_) => Code::InvalidArgument,
            FlightError::Arrow(arrow) => code_of(&DataFusionError::ArrowError(
                Box::new(clone_arrow(arrow)),
                None,
            )),
            FlightError::NotYetImplemented(_) => Code::Unimplemented,
            FlightError::ExternalError(inner) => external_code(inner.as_ref()),
        };
    }
    Code::Internal
}

fn clone_arrow(error: &ArrowError) -> ArrowError {
    match error {
        ArrowError::CastError(m) => ArrowError::CastError(m.clone()),
        ArrowError::ParseError(m) => ArrowError::ParseError(m.clone()),
        ArrowError::InvalidArgumentError(m) => ArrowError::InvalidArgumentError(m.clone()),
        ArrowError::ComputeError(m) => ArrowError::ComputeError(m.clone()),
        ArrowError::ExternalError(e) => ArrowError::ExternalError(e.to_string().into()),
        other => ArrowError::ExternalError(other.to_string().into()),
    }
}

/// Wraps a status received from a peer so that [`to_status`] hands it on unchanged.
pub fn from_status(status: Status) -> DataFusionError {
    DataFusionError::External(Box::new(status))
}

/// If `error` carries a peer's status (possibly behind context), returns it.
pub fn find_status(error: &DataFusionError) -> Option<&Status> {
    match error {
        DataFusionError::External(inner) => status_in(inner.as_ref()),
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            ArrowError::ExternalError(inner) => status_in(inner.as_ref()),
            _ => None,
        },
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            find_status(inner)
        }
        DataFusionError::Shared(inner) => find_status(inner),
        _ => None,
    }
}

/// The status inside an external error: a `Status`, a Flight error carrying one, or a
/// DataFusion error that does.
fn status_in<'a>(inner: &'a (dyn std::error::Error + Send + Sync + 'static)) -> Option<&'a Status> {
    if let Some(status) = inner.downcast_ref::<Status>() {
        return Some(status);
    }
    if let Some(FlightError::Tonic(status)) = inner.downcast_ref::<FlightError>() {
        return Some(status);
    }
    if let Some(FlightError::ExternalError(nested)) = inner.downcast_ref::<FlightError>() {
        return status_in(nested.as_ref());
    }
    inner
        .downcast_ref::<DataFusionError>()
        .and_then(find_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_status_keeps_its_code() {
        let e = from_status(Status::not_found("no such shard"));
        assert_eq!(to_status(&e).code(), Code::NotFound);
        let e = DataFusionError::Context("while reading".into(), Box::new(e));
        assert_eq!(to_status(&e).code(), Code::NotFound);
    }

    #[test]
    fn refused_paths_are_permission_denied() {
        let refused = crate::storage::validate_relative_path("/etc/passwd").expect_err("refused");
        let e = DataFusionError::External(Box::new(refused));
        assert_eq!(to_status(&e).code(), Code::PermissionDenied);
        let e = DataFusionError::Context("reading shard files".into(), Box::new(e));
        assert_eq!(to_status(&e).code(), Code::PermissionDenied);
    }

    #[test]
    fn undecodable_flight_data_is_invalid_argument() {
        for flight in [
            FlightError::DecodeError("Unexpected EOF".into()),
            FlightError::ProtocolError("Unexpected schema message".into()),
        ] {
            let e = DataFusionError::External(Box::new(flight));
            assert_eq!(to_status(&e).code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn messages_leave_out_data_directories() {
        let dir = std::env::temp_dir().join("status-redaction-test");
        crate::path_redaction::register_data_dir(&dir);
        let e = DataFusionError::Execution(format!(
            "Object at location {}/shards/t1/s2/f.parquet not found",
            dir.display()
        ));
        let status = to_status(&e);
        assert!(
            !status.message().contains(&*dir.to_string_lossy()),
            "{status}"
        );
        assert!(
            status.message().contains(" shards/t1/s2/f.parquet"),
            "{status}"
        );
    }

    #[test]
    fn no_code_is_read_from_a_message() {
        // Missing tables are typed errors before DataFusion plans; whatever DataFusion words
        // its own plan errors as, they are the statement's fault.
        for message in [
            "table 'x' not found",
            "table 'x' already exists",
            "x does not exist",
        ] {
            let e = DataFusionError::Plan(message.into());
            assert_eq!(to_status(&e).code(), Code::InvalidArgument, "{message}");
        }
    }
}
