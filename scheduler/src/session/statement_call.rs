//! [`StatementCall`]: who runs a statement text, in which client session, and what the
//! call itself bounds it with (the client's deadline, a way to cancel it).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::Principal;
use crate::session::client_sessions::ClientSession;

/// One call's statement text: its principal, session and bounds.
#[derive(Debug, Clone)]
pub struct StatementCall {
    pub principal: Principal,
    /// The client session whose settings apply and which `SET` changes; without one, the
    /// text runs in a session of its own.
    pub session: Option<Arc<ClientSession>>,
    /// The client's deadline for the call (gRPC `grpc-timeout`): it shortens the statement
    /// timeout.
    pub timeout: Option<Duration>,
    /// Cancels every statement of the call.
    pub cancel: CancellationToken,
}

impl StatementCall {
    /// A call of `principal` with no session, deadline or canceller of its own.
    pub fn new(principal: Principal) -> Self {
        Self {
            principal,
            session: None,
            timeout: None,
            cancel: CancellationToken::new(),
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
