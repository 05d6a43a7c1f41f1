//! Errors of the coordinator and the gRPC status each becomes.

use datafusion::error::DataFusionError;
use shardfusion_catalog::CatalogError;
use shardfusion_common::hashing::HashError;
use shardfusion_common::status::with_sqlstate;
use shardfusion_common::storage::StorageError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("syntax error: {message}")]
    Syntax { message: String },
    #[error("{message}")]
    InvalidArgument { message: String },
    #[error("{what} is not supported yet")]
    Unsupported { what: String },
    /// A NULL in a NOT NULL column of the rows being written.
    #[error("null value in column \"{column}\" of table \"{table}\" violates not-null constraint")]
    NotNull { table: String, column: String },
    /// A row a write adds makes a `CHECK` constraint's condition false.
    #[error("new row for relation \"{table}\" violates check constraint \"{constraint}\"")]
    CheckViolation { table: String, constraint: String },
    /// A write would give two rows the same primary or unique key.
    #[error(
        "duplicate key value violates unique constraint \"{constraint}\" of table \"{table}\": \
         Key {key} already exists"
    )]
    UniqueViolation {
        table: String,
        constraint: String,
        key: String,
    },
    /// The statement nests deeper or is larger than the documented limits.
    #[error("{message}")]
    TooComplex { message: String },
    /// The statement needs a right this server does not grant (e.g. host file access).
    #[error("{message}")]
    PermissionDenied { message: String },
    /// The caller is not logged in, or its credentials are wrong or no longer valid.
    #[error("{message}")]
    Unauthenticated {
        message: String,
        sqlstate: &'static str,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The statement ran (or waited to run) past its `statement_timeout`.
    #[error("canceling statement due to statement timeout (statement_timeout = {}ms)", timeout.as_millis())]
    StatementTimeout { timeout: std::time::Duration },
    /// The client cancelled the statement (`CancelFlightInfo`, `CancelQuery`, or by
    /// cancelling its call).
    #[error("canceling statement due to user request")]
    Canceled,
    /// Every statement slot is taken and the queue is full.
    #[error(
        "too many statements: {running} are running and {queued} more are waiting; try again \
         later, or raise --max-running-statements / --max-queued-statements"
    )]
    TooManyStatements { running: usize, queued: usize },
    /// `SET`, `SHOW` or `SetSessionOptions` named a setting that does not exist.
    #[error("unrecognized configuration parameter \"{name}\"")]
    UnknownSetting { name: String },
    /// A setting's value does not parse or is out of range.
    #[error("{message}")]
    BadSettingValue { message: String },
    /// A call named a client session that is not open (expired, closed, another role's).
    #[error(
        "session not found: it expired, was closed, or belongs to another user; open a new \
         one with SetSessionOptions"
    )]
    SessionNotFound,
    /// A call named (by its cookie) a session that ended; it was opened again, empty.
    #[error(
        "your session ended (the coordinator restarted, or the session expired or was \
         closed): its settings and any open transaction are gone, and nothing of that \
         transaction was committed. The session was opened again under the same cookie: run \
         the statement again (after BEGIN, if it belonged to a transaction)"
    )]
    SessionEnded,
    /// A cluster change that cannot be made now (a shard group already moving, a rebalance
    /// already running, a disabled target): the cluster's state must change first.
    #[error("{message}")]
    ClusterState { message: String },
    /// A shard or node named by a function does not exist.
    #[error("{message}")]
    UnknownObject { message: String },
    /// A transaction's commit lost a race with another session's (SQLSTATE 40001).
    #[error("{message}")]
    SerializationFailure { message: String },
    /// A value that is not of its column's type (`22P02`), or too long for it (`22001`): the
    /// status says which, with PostgreSQL's message.
    #[error("{}", .0.message())]
    BadValue(Status),
    /// A statement that the state of its transaction does not allow (SQLSTATE class 25, or
    /// 3B001 for an unknown savepoint).
    #[error("{message}")]
    Transaction {
        message: String,
        sqlstate: &'static str,
    },
    #[error("worker {node} failed: {status}")]
    Worker { node: String, status: Status },
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl SchedulerError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            message: message.into(),
        }
    }

    /// [`SchedulerError::ClusterState`].
    pub fn cluster_state(message: impl Into<String>) -> Self {
        Self::ClusterState {
            message: message.into(),
        }
    }

    /// [`SchedulerError::UnknownObject`].
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::UnknownObject {
            message: message.into(),
        }
    }

    /// [`SchedulerError::Transaction`].
    pub fn transaction(message: impl Into<String>, sqlstate: &'static str) -> Self {
        Self::Transaction {
            message: message.into(),
            sqlstate,
        }
    }

    pub fn unsupported(what: impl Into<String>) -> Self {
        Self::Unsupported { what: what.into() }
    }
}

impl From<SchedulerError> for Status {
    fn from(error: SchedulerError) -> Self {
        let message = error.to_string();
        match error {
            SchedulerError::Syntax { .. } => {
                with_sqlstate(Status::invalid_argument(message), "42601")
            }
            SchedulerError::InvalidArgument { .. } => Status::invalid_argument(message),
            // feature_not_supported
            SchedulerError::Unsupported { .. } => {
                with_sqlstate(Status::unimplemented(message), "0A000")
            }
            SchedulerError::PermissionDenied { .. } => {
                with_sqlstate(Status::permission_denied(message), "42501")
            }
            SchedulerError::TooComplex { .. } => {
                with_sqlstate(Status::invalid_argument(message), "54001")
            }
            SchedulerError::Unauthenticated { sqlstate, .. } => {
                with_sqlstate(Status::unauthenticated(message), sqlstate)
            }
            SchedulerError::NotNull { .. } => {
                with_sqlstate(Status::invalid_argument(message), "23502")
            }
            SchedulerError::UniqueViolation { .. } => {
                with_sqlstate(Status::already_exists(message), "23505")
            }
            // query_canceled, as PostgreSQL reports both.
            SchedulerError::StatementTimeout { .. } => {
                with_sqlstate(Status::deadline_exceeded(message), "57014")
            }
            SchedulerError::Canceled => with_sqlstate(Status::cancelled(message), "57014"),
            SchedulerError::CheckViolation { .. } => {
                with_sqlstate(Status::invalid_argument(message), "23514")
            }
            // too_many_connections: the closest PostgreSQL has to a full queue.
            SchedulerError::TooManyStatements { .. } => {
                with_sqlstate(Status::resource_exhausted(message), "53300")
            }
            SchedulerError::UnknownSetting { .. } => {
                with_sqlstate(Status::invalid_argument(message), "42704")
            }
            SchedulerError::BadSettingValue { .. } => {
                with_sqlstate(Status::invalid_argument(message), "22023")
            }
            SchedulerError::SessionNotFound => Status::not_found(message),
            // connection_failure: what a client of PostgreSQL sees when its backend is gone.
            SchedulerError::SessionEnded => {
                with_sqlstate(Status::failed_precondition(message), "08006")
            }
            SchedulerError::ClusterState { .. } => Status::failed_precondition(message),
            SchedulerError::Transaction { sqlstate, .. } => {
                with_sqlstate(Status::failed_precondition(message), sqlstate)
            }
            SchedulerError::BadValue(status) => status,
            SchedulerError::SerializationFailure { .. } => {
                with_sqlstate(Status::aborted(message), "40001")
            }
            SchedulerError::UnknownObject { .. } => Status::not_found(message),
            SchedulerError::Catalog(e) => catalog_status(&e),
            SchedulerError::Hash(e) => hash_status(&e),
            SchedulerError::Storage(e) if e.is_refused_path() => Status::permission_denied(message),
            SchedulerError::Storage(_) => Status::internal(message),
            SchedulerError::Worker { status, node } => {
                if status.message().starts_with("worker ") || node == COORDINATOR {
                    status
                } else {
                    Status::with_metadata(
                        status.code(),
                        format!("worker {node}: {}", status.message()),
                        status.metadata().clone(),
                    )
                }
            }
            SchedulerError::DataFusion(e) => {
                if let Some(status) = shardfusion_common::status::find_status(&e) {
                    return status.clone();
                }
                if let Some(inner) = find_scheduler_error(&e) {
                    let status: Status = inner.into();
                    return status;
                }
                shardfusion_common::status::to_status(&e)
            }
        }
    }
}

/// A `SchedulerError` raised inside DataFusion (e.g. by the INSERT sink) comes back wrapped.
fn find_scheduler_error(error: &DataFusionError) -> Option<SchedulerError> {
    match error {
        DataFusionError::External(inner) => {
            let inner = inner.downcast_ref::<SchedulerError>()?;
            Some(clone_error(inner))
        }
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            find_scheduler_error(inner)
        }
        DataFusionError::Shared(inner) => find_scheduler_error(inner),
        _ => None,
    }
}

fn clone_error(error: &SchedulerError) -> SchedulerError {
    let status: Status = match error {
        SchedulerError::Worker { node, status } => {
            return SchedulerError::Worker {
                node: node.clone(),
                status: status.clone(),
            };
        }
        SchedulerError::Syntax { message } => {
            return SchedulerError::Syntax {
                message: message.clone(),
            };
        }
        SchedulerError::InvalidArgument { message } => return SchedulerError::invalid(message),
        SchedulerError::Unsupported { what } => return SchedulerError::unsupported(what),
        SchedulerError::PermissionDenied { message } => {
            return SchedulerError::PermissionDenied {
                message: message.clone(),
            };
        }
        SchedulerError::TooComplex { message } => {
            return SchedulerError::TooComplex {
                message: message.clone(),
            };
        }
        SchedulerError::Unauthenticated { message, sqlstate } => {
            return SchedulerError::Unauthenticated {
                message: message.clone(),
                sqlstate,
            };
        }
        SchedulerError::NotNull { table, column } => {
            return SchedulerError::NotNull {
                table: table.clone(),
                column: column.clone(),
            };
        }
        SchedulerError::CheckViolation { table, constraint } => {
            return SchedulerError::CheckViolation {
                table: table.clone(),
                constraint: constraint.clone(),
            };
        }
        SchedulerError::UniqueViolation {
            table,
            constraint,
            key,
        } => {
            return SchedulerError::UniqueViolation {
                table: table.clone(),
                constraint: constraint.clone(),
                key: key.clone(),
            };
        }
        SchedulerError::StatementTimeout { timeout } => {
            return SchedulerError::StatementTimeout { timeout: *timeout };
        }
        SchedulerError::Canceled => return SchedulerError::Canceled,
        SchedulerError::TooManyStatements { running, queued } => {
            return SchedulerError::TooManyStatements {
                running: *running,
                queued: *queued,
            };
        }
        SchedulerError::UnknownSetting { name } => {
            return SchedulerError::UnknownSetting { name: name.clone() };
        }
        SchedulerError::BadSettingValue { message } => {
            return SchedulerError::BadSettingValue {
                message: message.clone(),
            };
        }
        SchedulerError::SessionNotFound => return SchedulerError::SessionNotFound,
        SchedulerError::SessionEnded => return SchedulerError::SessionEnded,
        SchedulerError::Transaction { message, sqlstate } => {
            return SchedulerError::transaction(message.clone(), sqlstate);
        }
        SchedulerError::BadValue(status) => return SchedulerError::BadValue(status.clone()),
        SchedulerError::SerializationFailure { message } => {
            return SchedulerError::SerializationFailure {
                message: message.clone(),
            };
        }
        SchedulerError::Hash(e) => hash_status(e),
        SchedulerError::Catalog(e) => catalog_status(e),
        other => Status::internal(other.to_string()),
    };
    SchedulerError::Worker {
        node: COORDINATOR.into(),
        status,
    }
}

/// The status of a catalog error, decided by its type wherever it was raised (directly, or
/// inside DataFusion by the INSERT sink).
fn catalog_status(error: &CatalogError) -> Status {
    let message = error.to_string();
    match error {
        CatalogError::TableNotFound { .. } => with_sqlstate(Status::not_found(message), "42P01"),
        CatalogError::ColumnNotFound { .. } => with_sqlstate(Status::not_found(message), "42703"),
        CatalogError::ColocationNotFound { .. } => Status::not_found(message),
        CatalogError::TableExists { .. } => with_sqlstate(Status::already_exists(message), "42P07"),
        CatalogError::ColumnExists { .. } => {
            with_sqlstate(Status::already_exists(message), "42701")
        }
        CatalogError::AlreadyDistributed { .. } => Status::already_exists(message),
        CatalogError::NoWorkers => Status::failed_precondition(message),
        CatalogError::NodeNotFound { .. } => Status::not_found(message),
        CatalogError::NodeHasPlacements { .. } => Status::failed_precondition(message),
        CatalogError::PlacementExists { .. } => Status::already_exists(message),
        CatalogError::StorageMismatch { .. } => Status::failed_precondition(message),
        CatalogError::NotDistributed { .. } => Status::invalid_argument(message),
        CatalogError::AlreadyIsolated { .. } => Status::failed_precondition(message),
        CatalogError::NodeIdentityInUse { .. } => Status::already_exists(message),
        CatalogError::RoleNotFound { .. } => with_sqlstate(Status::not_found(message), "42704"),
        CatalogError::RoleExists { .. } => with_sqlstate(Status::already_exists(message), "42710"),
        CatalogError::LastSuperuser => with_sqlstate(Status::failed_precondition(message), "55006"),
        CatalogError::RoleMembershipLoop { .. } => {
            with_sqlstate(Status::invalid_argument(message), "0LP01")
        }
        // serialization_failure: the statement lost a race and may simply be run again.
        CatalogError::Conflict { .. } | CatalogError::BranchConflict { .. } => {
            with_sqlstate(Status::aborted(message), "40001")
        }
        CatalogError::NotNullOnRows { .. } => {
            with_sqlstate(Status::invalid_argument(message), "23502")
        }
        CatalogError::SequenceNotFound { .. } => with_sqlstate(Status::not_found(message), "42P01"),
        // sequence_generator_limit_exceeded
        CatalogError::SequenceExhausted { .. } => {
            with_sqlstate(Status::out_of_range(message), "2200H")
        }
        // numeric_value_out_of_range
        CatalogError::SequenceValueOutOfBounds { .. } => {
            with_sqlstate(Status::out_of_range(message), "22003")
        }
        // dependent_objects_still_exist
        CatalogError::InvalidTableDefinition { .. } => {
            with_sqlstate(Status::invalid_argument(message), "42P16")
        }
        CatalogError::TableReferenced { .. } => {
            with_sqlstate(Status::failed_precondition(message), "2BP01")
        }
        CatalogError::SequenceInUse { .. } => {
            with_sqlstate(Status::failed_precondition(message), "2BP01")
        }
        CatalogError::Storage(_)
        | CatalogError::Corrupt { .. }
        | CatalogError::Inconsistent { .. } => Status::internal(message),
        // The rest are about the statement's arguments (column, colocation, shard count).
        _ => Status::invalid_argument(message),
    }
}

/// The node name of errors the coordinator raised itself (never prefixed "worker ...").
const COORDINATOR: &str = "coordinator";

/// A distribution-key error: a NULL key is an integrity violation (23502), a value that does
/// not convert is invalid text (22P02).
fn hash_status(error: &HashError) -> Status {
    let status = Status::invalid_argument(error.to_string());
    match error {
        HashError::NullValue { .. } => with_sqlstate(status, "23502"),
        HashError::BadValue { .. } => with_sqlstate(status, "22P02"),
        _ => status,
    }
}

impl From<SchedulerError> for DataFusionError {
    fn from(error: SchedulerError) -> Self {
        match error {
            SchedulerError::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

pub type Result<T> = std::result::Result<T, SchedulerError>;

/// An Arrow kernel's error (a cast, a concatenation) is DataFusion's, as its queries report it.
impl From<datafusion::arrow::error::ArrowError> for SchedulerError {
    fn from(error: datafusion::arrow::error::ArrowError) -> Self {
        Self::DataFusion(DataFusionError::ArrowError(Box::new(error), None))
    }
}
