//! A statement's commit point: once a statement has committed a change to the catalog, it
//! runs to its end — its timeout and cancellation wait for it, and it reports what it did —
//! as PostgreSQL holds interrupts while it commits. Before that point, stopping it leaves
//! no trace (the files it wrote are deleted or collected as orphans).
//!
//! [`crate::limits::statement_control::StatementControl`] runs each statement's work inside
//! [`within`]; code that commits calls [`reached`] right after the catalog accepted the
//! commit, before anything else it awaits (deleting what became garbage, the next table of
//! a `DROP`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

tokio::task_local! {
    static COMMITTED: Arc<AtomicBool>;
}

/// Runs `work`, recording in `committed` whether it reached its commit point.
pub async fn within<F: Future>(committed: Arc<AtomicBool>, work: F) -> F::Output {
    COMMITTED.scope(committed, work).await
}

/// The running statement committed: from now on it is not stopped. Outside a statement
/// (background work), nothing happens.
pub fn reached() {
    let _ = COMMITTED.try_with(|committed| committed.store(true, Ordering::Release));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_commit_point_is_recorded_for_the_statement_only() {
        let committed = Arc::new(AtomicBool::new(false));
        within(Arc::clone(&committed), async {
            tokio::task::yield_now().await
        })
        .await;
        assert!(!committed.load(Ordering::Acquire));
        within(Arc::clone(&committed), async { reached() }).await;
        assert!(committed.load(Ordering::Acquire));
        reached(); // outside a statement: no effect, no panic
    }
}
