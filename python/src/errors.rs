//! The exception classes of `shardfusion` and how gRPC statuses map onto them.
//!
//! As in PEP 249: `Error` is the base; `ProgrammingError` is the caller's statement (syntax,
//! unknown table or column, a table that already exists, something not supported);
//! `IntegrityError` is the caller's data (a NULL distribution key, a value that does not fit
//! its column); `OperationalError` is the connection or the cluster (a worker down, a server
//! unreachable, an internal failure). The server's SQLSTATE, when it sends one, decides;
//! otherwise the gRPC code does. Every exception carries `grpc_code` and `sqlstate`
//! attributes (`None` when unknown).

use arrow::error::ArrowError;
use arrow_flight::error::FlightError;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use shardfusion_common::status::SQLSTATE_METADATA;
use tonic::{Code, Status};

pyo3::create_exception!(
    shardfusion,
    Error,
    PyException,
    "Base class of every ShardFusion error."
);
pyo3::create_exception!(
    shardfusion,
    ProgrammingError,
    Error,
    "The statement is wrong: bad SQL, unknown table or column, unsupported feature."
);
pyo3::create_exception!(
    shardfusion,
    OperationalError,
    Error,
    "The connection or the cluster failed: unreachable server, worker down, internal error."
);
pyo3::create_exception!(
    shardfusion,
    IntegrityError,
    Error,
    "The data is wrong: a NULL distribution key, a value that does not fit its column."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("ProgrammingError", py.get_type::<ProgrammingError>())?;
    m.add("OperationalError", py.get_type::<OperationalError>())?;
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    Ok(())
}

/// The exception for a status the server (or the transport) returned.
pub fn from_status(status: &Status) -> PyErr {
    let sqlstate = status
        .metadata()
        .get(SQLSTATE_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let message = status.message().to_string();
    let error = match (sqlstate.as_deref().map(|s| s.get(..2)), status.code()) {
        (Some(Some("22" | "23")), _) => IntegrityError::new_err(message),
        (Some(Some("42")), _) => ProgrammingError::new_err(message),
        (Some(Some("08")), _) => OperationalError::new_err(message),
        (
            _,
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::Unimplemented
            | Code::OutOfRange,
        ) => ProgrammingError::new_err(message),
        _ => OperationalError::new_err(message),
    };
    Python::attach(|py| {
        let value = error.value(py);
        let _ = value.setattr("grpc_code", format!("{:?}", status.code()));
        let _ = value.setattr("sqlstate", sqlstate);
    });
    error
}

/// The exception for a failed Flight call.
pub fn from_flight(error: FlightError) -> PyErr {
    match error {
        FlightError::Tonic(status) => from_status(&status),
        FlightError::Arrow(e) => from_arrow(e),
        FlightError::ExternalError(inner) => match inner.downcast::<Status>() {
            Ok(status) => from_status(&status),
            Err(inner) => match inner.downcast::<ArrowError>() {
                Ok(arrow) => from_arrow(*arrow),
                Err(inner) => OperationalError::new_err(inner.to_string()),
            },
        },
        other => OperationalError::new_err(other.to_string()),
    }
}

/// The exception for an Arrow error met while reading or sending data.
pub fn from_arrow(error: ArrowError) -> PyErr {
    match error {
        ArrowError::ExternalError(inner) => match inner.downcast::<Status>() {
            Ok(status) => from_status(&status),
            Err(inner) => match inner.downcast::<FlightError>() {
                Ok(flight) => from_flight(*flight),
                Err(inner) => OperationalError::new_err(inner.to_string()),
            },
        },
        ArrowError::CastError(m) | ArrowError::InvalidArgumentError(m) => {
            IntegrityError::new_err(m)
        }
        other => OperationalError::new_err(other.to_string()),
    }
}
