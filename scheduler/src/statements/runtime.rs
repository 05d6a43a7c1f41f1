//! The runtime statements are parsed, planned and (for DDL and DML) run on: threads with
//! large stacks.
//!
//! A statement's syntax tree and DataFusion's logical and physical expressions are walked
//! recursively many times (cloned, rewritten, optimized, serialized), once per level of
//! expression nesting. [`crate::statements::expression_depth`] caps that nesting, but at its cap a debug
//! build needs more than the 2 MiB a Tokio worker thread has by default, and the runtime a
//! coordinator is embedded in (a test, the Python bindings) is not ours to configure. So
//! `Coordinator::execute` and `describe` hop onto this process-wide runtime and back; a query
//! planned here still streams its rows on the caller's runtime.
//!
//! Dropping the caller's future aborts the statement's task here, as it would have been
//! dropped on the caller's runtime.
//!
//! A process that owns its runtime (the `shardfusion` binary, the benchmark runner) builds it
//! with [`statement_runtime_builder`]: its threads already have the stack, so statements run
//! where they arrived, without the two thread hand-offs of a hop.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;

use crate::error::{Result, SchedulerError};

/// Stack of each statement thread: room for [`crate::statements::expression_depth::MAX_EXPRESSION_DEPTH`]
/// levels in every recursive walk, in a debug build. Only the pages a statement touches are
/// ever resident.
const STACK_BYTES: usize = 256 * 1024 * 1024;

thread_local! {
    /// Whether this thread has the statement stack (it belongs to a runtime built by
    /// [`statement_runtime_builder`]).
    static STATEMENT_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// A multi-threaded runtime builder (one worker per core, all drivers on) whose threads have
/// room for any statement: statements run on them directly.
pub fn statement_runtime_builder() -> tokio::runtime::Builder {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(threads)
        .thread_stack_size(STACK_BYTES)
        .on_thread_start(|| STATEMENT_THREAD.with(|s| s.set(true)))
        .enable_all();
    builder
}

/// Runs a process's `main` future to completion on a runtime from
/// [`statement_runtime_builder`], for processes that own their runtime.
pub fn block_on_statement_runtime<F: Future>(main: F) -> F::Output {
    statement_runtime_builder()
        .build()
        .expect("the process runtime starts")
        .block_on(main)
}

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            statement_runtime_builder()
                .thread_name("shardfusion-statement")
                .max_blocking_threads(64)
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| SchedulerError::invalid(format!("cannot start the statement runtime: {e}")))
}

/// Runs `work` on a thread with the statement stack and waits for it: right here when this
/// thread has it, else on the statement runtime (aborted if the wait is dropped).
pub async fn run<T, F>(work: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if STATEMENT_THREAD.with(Cell::get) {
        return work.await;
    }
    let mut task = AbortOnDrop(runtime()?.spawn(work));
    match task.await_task().await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(SchedulerError::invalid(format!(
            "the statement failed unexpectedly: {e}"
        ))),
        Err(e) => Err(SchedulerError::invalid(format!(
            "the statement was cancelled: {e}"
        ))),
    }
}

/// A task handle that aborts the task when dropped before it finished.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn await_task(&mut self) -> std::result::Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
