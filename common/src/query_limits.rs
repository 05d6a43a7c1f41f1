//! A query's memory limit, wherever its parts run.
//!
//! The coordinator gives each query a [`TaskContext`] of its own whose DataFusion memory
//! pool holds at most the query's limit ([`limited_task_context`]), and records the limit in
//! that context's configuration ([`QueryMemoryLimit`]). Every fragment it sends (and every
//! shuffle producer a fragment asks a peer for) carries the limit in its
//! [`crate::wire::TaskTicket`]; the worker runs the fragment in a context built the same way,
//! the fragments of one query on one worker sharing one pool (a shuffle stage, which serves
//! several queries' readers under its own id, has a pool of its own).
//! Operators that can spill (sorts, aggregations, joins) spill to disk when the pool refuses
//! them memory; an operator that cannot fails the query with DataFusion's
//! `ResourcesExhausted`, which reaches the client as gRPC `ResourceExhausted` (SQLSTATE
//! 53200), naming the operators that held the most memory. Other queries have pools of
//! their own and are unaffected.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnv;

/// The memory limit of the query a task context runs, in bytes: a [`TaskContext`]'s
/// configuration extension, read when tickets for its fragments are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryMemoryLimit(pub usize);

impl QueryMemoryLimit {
    /// The limit `context` runs under, if any.
    pub fn of(context: &TaskContext) -> Option<usize> {
        context
            .session_config()
            .get_extension::<QueryMemoryLimit>()
            .map(|limit| limit.0)
    }

    /// The limit as a ticket carries it: 0 for none.
    pub fn to_wire(limit: Option<usize>) -> u64 {
        limit.map_or(0, |bytes| bytes as u64)
    }

    /// The limit a ticket carries.
    pub fn from_wire(bytes: u64) -> Option<usize> {
        (bytes > 0).then(|| usize::try_from(bytes).unwrap_or(usize::MAX))
    }
}

/// How many of the largest memory consumers an exhausted pool names in its error.
const CONSUMERS_NAMED: usize = 5;

/// A memory pool holding at most `limit` bytes, naming its largest consumers when it refuses.
pub fn query_memory_pool(limit: usize) -> Arc<dyn MemoryPool> {
    Arc::new(TrackConsumersPool::new(
        GreedyMemoryPool::new(limit),
        NonZeroUsize::new(CONSUMERS_NAMED).expect("non-zero"),
    ))
}

/// A copy of `base` for one query, `query_id`: with `memory_limit`, a memory pool of its own
/// holding at most that many bytes (and the limit recorded for the query's fragments);
/// without one, `base`'s pool.
pub fn limited_task_context(
    base: &TaskContext,
    query_id: String,
    memory_limit: Option<usize>,
) -> TaskContext {
    let pool = memory_limit.map(|limit| (limit, query_memory_pool(limit)));
    task_context_in_pool(base, query_id, pool)
}

/// A copy of `base` for the query `query_id`, drawing on `pool` (of the given limit) if
/// given: the fragments of one query on one node share a pool.
pub fn task_context_in_pool(
    base: &TaskContext,
    query_id: String,
    pool: Option<(usize, Arc<dyn MemoryPool>)>,
) -> TaskContext {
    let mut config = base.session_config().clone();
    let mut runtime = base.runtime_env();
    if let Some((limit, pool)) = pool {
        config = config.with_extension(Arc::new(QueryMemoryLimit(limit)));
        runtime = Arc::new(RuntimeEnv {
            memory_pool: pool,
            ..runtime.as_ref().clone()
        });
    }
    TaskContext::new(
        Some(query_id),
        base.session_id(),
        config,
        base.scalar_functions().clone(),
        base.higher_order_functions().clone(),
        base.aggregate_functions().clone(),
        base.window_functions().clone(),
        runtime,
    )
}

/// The id a query's fragments are sent under: its task id, else its session's id.
pub fn query_id_of(context: &TaskContext) -> String {
    context.task_id().unwrap_or_else(|| context.session_id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::MemoryConsumer;
    use datafusion::prelude::SessionContext;

    #[test]
    fn a_limited_context_refuses_memory_beyond_its_limit() {
        let base = SessionContext::new().task_ctx();
        let limited = limited_task_context(&base, "q1".into(), Some(1024));
        assert_eq!(QueryMemoryLimit::of(&limited), Some(1024));
        assert_eq!(query_id_of(&limited), "q1");
        let reservation = MemoryConsumer::new("test").register(limited.memory_pool());
        assert!(reservation.try_grow(1000).is_ok());
        let refused = reservation.try_grow(100).expect_err("an error");
        assert!(matches!(
            refused,
            datafusion::error::DataFusionError::ResourcesExhausted(_)
        ));
        // The base context's pool is not the limited one.
        let other = MemoryConsumer::new("other").register(base.memory_pool());
        assert!(other.try_grow(1 << 20).is_ok());
    }

    #[test]
    fn the_wire_form_round_trips() {
        assert_eq!(QueryMemoryLimit::to_wire(None), 0);
        assert_eq!(QueryMemoryLimit::from_wire(0), None);
        assert_eq!(
            QueryMemoryLimit::from_wire(QueryMemoryLimit::to_wire(Some(5))),
            Some(5)
        );
    }
}
