//! Which statement a planning run belongs to, for the [`DistributeRule`](super::DistributeRule)
//! of a session shared by many statements.
//!
//! A session (and so its optimizer rules) is reused across statements and clients
//! ([`crate::session::session_cache`]), but what a statement's workers send back is counted
//! per statement (`shardfusion_stat_statements`). The statement's counters ride along with its
//! planning as a task-local: [`counting`] wraps the planning future, and the rule picks the
//! counters up with [`current`] when it builds the distributed nodes.

use std::future::Future;
use std::sync::Arc;

use crate::monitoring::statement_stats::QueryCounters;

tokio::task_local! {
    static COUNTERS: Arc<QueryCounters>;
}

/// Runs `planning` with distributed nodes adding to `counters`.
pub async fn counting<F: Future>(counters: Arc<QueryCounters>, planning: F) -> F::Output {
    COUNTERS.scope(counters, planning).await
}

/// The counters of the statement being planned; fresh ones (counted nowhere) outside
/// [`counting`].
pub fn current() -> Arc<QueryCounters> {
    COUNTERS.try_with(Arc::clone).unwrap_or_default()
}
