//! Flight SQL's transactions: `BeginTransaction`, statements carrying its `transaction_id`,
//! and `EndTransaction` (commit or roll back), as ADBC runs them with autocommit off.
//!
//! A Flight SQL transaction is a client session of its own ([`ClientSession`]) that begins
//! with `BEGIN`: its id is the transaction id. A statement, ingest or prepared statement
//! naming it runs in that session, so it is the same transaction `BEGIN` ... `COMMIT` gives
//! over SQL (snapshot, own writes, DDL, savepoints), and `EndTransaction` runs `COMMIT` or
//! `ROLLBACK` there and closes the session. The session starts with the settings of the
//! caller's session, if its call carried one.

use std::sync::Arc;

use arrow_flight::sql::{
    ActionBeginTransactionResult, ActionEndTransactionRequest, EndTransaction,
};
use tonic::Status;

use crate::coordinator::Coordinator;
use crate::session::client_sessions::ClientSession;
use crate::session::statement_call::StatementCall;

/// Begins a transaction for `caller` (the call of the `BeginTransaction` request).
pub async fn begin(
    coordinator: &Coordinator,
    caller: &StatementCall,
) -> Result<ActionBeginTransactionResult, Status> {
    let sessions = &coordinator.cluster().client_sessions;
    let session = sessions.open(caller.principal.name());
    if let Some(from) = &caller.session {
        let settings = from.settings();
        session.update(|own| {
            *own = settings;
            Ok(())
        })?;
    }
    let call = in_session(caller, Arc::clone(&session));
    if let Err(e) = coordinator.execute_call(&call, "BEGIN", Vec::new()).await {
        let _ = sessions.close(session.id(), caller.principal.name());
        return Err(e.into());
    }
    Ok(ActionBeginTransactionResult {
        transaction_id: session.id().to_string().into_bytes().into(),
    })
}

/// `caller` moved into the session of the transaction `transaction_id` names (unchanged
/// without one).
pub fn joined(
    coordinator: &Coordinator,
    caller: StatementCall,
    transaction_id: Option<&[u8]>,
) -> Result<StatementCall, Status> {
    let Some(id) = transaction_id.filter(|id| !id.is_empty()) else {
        return Ok(caller);
    };
    let id = String::from_utf8_lossy(id);
    let sessions = &coordinator.cluster().client_sessions;
    let session = sessions.find(&id, caller.principal.name()).map_err(|_| {
        Status::not_found(format!(
            "transaction \"{id}\" is not open: it was committed or rolled back, its session \
             expired, or it never began (BeginTransaction gives the ids)"
        ))
    })?;
    Ok(in_session(&caller, session))
}

/// Commits or rolls back the transaction of `request` and ends its session.
pub async fn end(
    coordinator: &Coordinator,
    caller: StatementCall,
    request: &ActionEndTransactionRequest,
) -> Result<(), Status> {
    let sql = match EndTransaction::try_from(request.action) {
        Ok(EndTransaction::Commit) => "COMMIT",
        Ok(EndTransaction::Rollback) => "ROLLBACK",
        _ => {
            return Err(Status::invalid_argument(format!(
                "EndTransaction action {} is neither COMMIT (1) nor ROLLBACK (2)",
                request.action
            )));
        }
    };
    let call = joined(coordinator, caller, Some(&request.transaction_id))?;
    let ended = coordinator.execute_call(&call, sql, Vec::new()).await;
    if let Some(session) = &call.session {
        let _ = (coordinator.cluster().client_sessions).close(session.id(), call.principal.name());
    }
    ended.map(drop).map_err(Status::from)
}

fn in_session(caller: &StatementCall, session: Arc<ClientSession>) -> StatementCall {
    let mut call = StatementCall::new(caller.principal.clone()).in_session(Some(session));
    call.timeout = caller.timeout;
    call
}
