//! Who a Flight SQL call is and where its statements run: the principal its credentials
//! name, the client session its cookie names (or a detached one), and the Flight SQL
//! transaction a statement, ingest or prepared statement names ([`flight_transactions`]).

use std::sync::Arc;

use tonic::{Request, Status};

use crate::auth::Principal;
use crate::error::SchedulerError;
use crate::frontend::call_metadata::{credentials, grpc_timeout, session_cookie};
use crate::frontend::flight_sql::FlightSqlServer;
use crate::frontend::flight_transactions;
use crate::session::client_sessions::ClientSessions;
use crate::session::statement_call::StatementCall;

impl FlightSqlServer {
    /// The principal of `request`, found by [`crate::frontend::require_login`]; computed
    /// from its credentials if the service is called without that gate.
    pub(super) fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        if let Some(principal) = request.extensions().get::<Principal>() {
            return Ok(principal.clone());
        }
        let cluster = self.coordinator.cluster();
        let roles = Arc::clone(&cluster.catalog.snapshot().roles);
        let credentials = credentials(request.metadata())?;
        cluster
            .auth
            .principal(&roles, credentials)
            .map_err(Status::from)
    }

    /// Cancels the results `info`'s tickets name, of `principal`.
    /// The statement call `request` makes: its principal, the client session its cookie
    /// names (without a cookie, a detached one, kept if a `SET` changes it), and its
    /// deadline. A cookie naming a session that ended (a restart, expiry, `CloseSession`)
    /// fails this one call, as a dropped connection would, so that a client in a
    /// transaction learns it is gone; the session is opened again under the same cookie for
    /// its next calls.
    pub(super) fn call<T>(&self, request: &Request<T>) -> Result<StatementCall, Status> {
        let principal = self.principal(request)?;
        let sessions = &self.coordinator.cluster().client_sessions;
        let session = match session_cookie(request.metadata()) {
            Some(id) => match sessions.find(&id, principal.name()) {
                Ok(session) => session,
                Err(_) => {
                    if sessions.reopen(&id, principal.name()).is_some() {
                        return Err(SchedulerError::SessionEnded.into());
                    }
                    ClientSessions::detached(principal.name())
                }
            },
            None => ClientSessions::detached(principal.name()),
        };
        Ok(StatementCall::new(principal)
            .in_session(Some(session))
            .with_timeout(grpc_timeout(request.metadata())))
    }

    /// [`Self::call`] in the Flight SQL transaction `transaction_id` names, if any.
    pub(super) fn call_in<T>(
        &self,
        request: &Request<T>,
        transaction_id: Option<&[u8]>,
    ) -> Result<StatementCall, Status> {
        flight_transactions::joined(&self.coordinator, self.call(request)?, transaction_id)
    }

    /// [`Self::call`] in the transaction prepared statement `handle` was prepared in.
    pub(super) fn call_prepared<T>(
        &self,
        request: &Request<T>,
        handle: &str,
    ) -> Result<StatementCall, Status> {
        let principal = self.principal(request)?;
        let transaction = self.prepared.transaction(handle, principal.name())?;
        self.call_in(request, transaction.as_deref())
    }

    /// Keeps the session of `call` if its statements opened it with a `SET`, returning the
    /// cookie to set.
    pub(super) fn kept_session(&self, call: &StatementCall) -> Option<String> {
        let session = call.session.as_ref()?;
        let sessions = &self.coordinator.cluster().client_sessions;
        if !session.changed() || sessions.find(session.id(), call.principal.name()).is_ok() {
            return None;
        }
        sessions.keep(session);
        Some(session.cookie())
    }
}
