//! [`StatementCall`]: who runs a statement text, in which client session, and what the
//! call itself bounds it with (the client's deadline). A call is cancelled by dropping it
//! (the client cancelling its call); a query's result, by its own token
//! ([`crate::limits::statement_control`]).

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Principal;
use crate::session::client_sessions::ClientSession;

/// One call's statement text: its principal, session and bounds.
#[derive(Debug, Clone)]
pub struct StatementCall {
    pub principal: Principal,
    /// The client session whose settings apply and which `SET` changes; without one, the
    /// text runs in a session of its own.
    pub session: Option<Arc<ClientSession>>,
    /// The client's deadline for the call (gRPC `grpc-timeout`): it bounds what runs
    /// during the call.
    pub timeout: Option<Duration>,
}

impl StatementCall {
    /// A call of `principal` with no session or deadline of its own.
    pub fn new(principal: Principal) -> Self {
        Self {
            principal,
            session: None,
            timeout: None,
        }
    }

    pub fn in_session(mut self, session: Option<Arc<ClientSession>>) -> Self {
        self.session = session;
        self
    }

    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}
