//! The session statements share: one DataFusion `SessionState` (and `TaskContext`) per
//! catalog snapshot, built on the first statement after the catalog changed and reused by
//! every statement, of every client, until it changes again.
//!
//! Building a session registers hundreds of functions and copies them into the task
//! context; per statement that was most of the fixed cost of a short query. A shared session
//! is only read: statements plan against `&SessionState` and run with the shared
//! `TaskContext`. What differs per statement is carried outside it — the statement's counters
//! through [`crate::planner::statement_counters`] — and a statement that would change a session
//! (`SET`, `PREPARE`) is planned in a copy of its own (`Coordinator`'s `physical_plan`).
//!
//! A new catalog snapshot (DDL, a commit, a shard move) or a new transport makes the next
//! statement build a new session, so no statement plans with stale tables or placements; the
//! session's [`PlanCache`] of query shapes goes with it.

use std::sync::{Arc, OnceLock};

use datafusion::execution::TaskContext;
use datafusion::execution::session_state::SessionState;
use parking_lot::Mutex;
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_common::exchange::transport::Transport;

use crate::cluster::shared_state::Cluster;
use crate::error::Result;
use crate::session::plan_cache::PlanCache;
use crate::session::statement_context::shared_state_for;

/// A session over one catalog snapshot, shared by the statements planned against it.
pub struct SharedSession {
    snapshot: Arc<CatalogSnapshot>,
    transport: Arc<dyn Transport>,
    state: SessionState,
    task_ctx: Arc<TaskContext>,
    /// Optimized plans of the query shapes planned in this session.
    plans: PlanCache,
    /// `state` planning for one partition, for queries pinned to one shard group
    /// ([`crate::planner::router`]); made on the first such query.
    router_state: OnceLock<SessionState>,
}

impl std::fmt::Debug for SharedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSession")
            .field("catalog_version", &self.snapshot.version)
            .finish_non_exhaustive()
    }
}

impl SharedSession {
    /// A session over `snapshot` (the committed state, or a transaction's own view of it)
    /// and `cluster`'s current transport.
    pub fn over(cluster: &Arc<Cluster>, snapshot: Arc<CatalogSnapshot>) -> Result<Arc<Self>> {
        let transport = cluster.transport();
        let state = shared_state_for(cluster, Arc::clone(&snapshot), Arc::clone(&transport))?;
        let task_ctx = Arc::new(TaskContext::from(&state));
        Ok(Arc::new(SharedSession {
            snapshot,
            transport,
            state,
            task_ctx,
            plans: PlanCache::default(),
            router_state: OnceLock::new(),
        }))
    }

    /// The catalog state the session plans against.
    pub fn snapshot(&self) -> &Arc<CatalogSnapshot> {
        &self.snapshot
    }

    /// The session state to plan in; never changed.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// The context queries planned here run with.
    pub fn task_ctx(&self) -> Arc<TaskContext> {
        Arc::clone(&self.task_ctx)
    }

    /// The session state for queries pinned to one shard group: the shared state, planning
    /// for one partition.
    pub fn router_state(&self) -> &SessionState {
        self.router_state.get_or_init(|| {
            let mut state = self.state.clone();
            state.config_mut().options_mut().execution.target_partitions = 1;
            state
        })
    }

    /// The plans of query shapes, valid for this session's snapshot only.
    pub fn plan_cache(&self) -> &PlanCache {
        &self.plans
    }
}

/// The current shared session, rebuilt when the catalog or the transport changes.
#[derive(Debug, Default)]
pub struct SessionCache {
    current: Mutex<Option<Arc<SharedSession>>>,
}

impl SessionCache {
    /// The session over `cluster`'s current catalog snapshot.
    pub fn current(&self, cluster: &Arc<Cluster>) -> Result<Arc<SharedSession>> {
        let snapshot = cluster.catalog.snapshot();
        let transport = cluster.transport();
        if let Some(session) = self.current.lock().as_ref()
            && Arc::ptr_eq(&session.snapshot, &snapshot)
            && Arc::ptr_eq(&session.transport, &transport)
        {
            return Ok(Arc::clone(session));
        }
        // Built outside the lock: statements of the previous snapshot keep planning meanwhile.
        let session = SharedSession::over(cluster, snapshot)?;
        let mut current = self.current.lock();
        // Two statements may build one at once; keep the newer snapshot's.
        let newer = current
            .as_ref()
            .is_none_or(|kept| kept.snapshot.version <= session.snapshot.version);
        if newer {
            *current = Some(Arc::clone(&session));
        }
        Ok(session)
    }
}
