//! [`StatementControl`]: what bounds one statement while it runs — its deadline
//! (`statement_timeout`), its cancellation, its slot ([`Admission`]) and its memory
//! (`datafusion.runtime.memory_limit`).
//!
//! A statement is planned — and, for DDL and DML, run — inside [`StatementControl::run`]; a
//! query's rows stream through [`StatementControl::stream`], which takes a slot again when
//! the first batch is asked for. Either way, the statement ends at its deadline with
//! `DeadlineExceeded` (SQLSTATE 57014), or when cancelled with `Cancelled` (57014), and what
//! it was running is dropped: a query's fragments on the workers are cancelled with their
//! streams, and a write that had not committed leaves nothing behind but files the orphan
//! cleanup removes. A write that reached its commit point ([`commit_point`]) runs to its end
//! and reports what it did.
//!
//! A query's stream is also stopped when nobody polls it: a client that stops reading (and
//! so stops the stream by flow control) loses its slot and its fragments at the deadline or
//! the cancel, not when it disconnects.
//!
//! The client's deadline for a call (`grpc-timeout`) bounds what runs during that call — the
//! planning, and DDL or DML — not the rows fetched later by another call.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use parking_lot::Mutex;
use shardfusion_common::query_limits::limited_task_context;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::{Result, SchedulerError};
use crate::limits::admission::{Admission, AdmissionSlot};
use crate::limits::commit_point;
use crate::session::session_settings::SessionSettings;

/// The bounds of one statement.
#[derive(Debug, Clone)]
pub struct StatementControl {
    /// `statement_timeout` and when it runs out, counted from the statement's start.
    deadline: Option<(Duration, Instant)>,
    /// The call's own deadline, which also bounds [`Self::run`].
    call_deadline: Option<(Duration, Instant)>,
    cancel: CancellationToken,
    memory_limit: Option<usize>,
    admission: Arc<Admission>,
    /// Whether the statement reached its commit point.
    committed: Arc<AtomicBool>,
}

/// A query's stream and the slot it holds, while it runs.
type Running = (SendableRecordBatchStream, AdmissionSlot);

impl StatementControl {
    /// Bounds for a statement starting now under `settings` (the session's, over the
    /// server's defaults); `call_timeout` is the client's deadline for the call.
    pub fn new(
        settings: &SessionSettings,
        call_timeout: Option<Duration>,
        admission: Arc<Admission>,
    ) -> Self {
        let now = Instant::now();
        Self {
            deadline: settings.timeout().map(|t| (t, now + t)),
            call_deadline: call_timeout.map(|t| (t, now + t)),
            cancel: CancellationToken::new(),
            memory_limit: settings.query_memory_limit(),
            admission,
            committed: Arc::default(),
        }
    }

    /// What cancels the statement.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The context a query runs in: `base`, with a memory pool of the statement's limit if
    /// it has one.
    pub fn task_context(&self, base: Arc<TaskContext>) -> Arc<TaskContext> {
        match self.memory_limit {
            None => base,
            Some(limit) => Arc::new(limited_task_context(
                &base,
                uuid::Uuid::new_v4().simple().to_string(),
                Some(limit),
            )),
        }
    }

    /// Runs `work` once a slot is free, until it ends, a deadline (the statement's or the
    /// call's) passes or the statement is cancelled — then `work` is dropped, unless it
    /// reached its commit point.
    pub async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let committed = Arc::clone(&self.committed);
        let work = commit_point::within(committed, async {
            let _slot = self.admission.admit().await?;
            work.await
        });
        let deadline = earliest(self.deadline, self.call_deadline);
        self.bounded(deadline, work).await
    }

    /// `work`, unless `deadline` passes or the statement is cancelled first (and it has
    /// not committed).
    async fn bounded<T>(
        &self,
        deadline: Option<(Duration, Instant)>,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased;
            error = self.stopped(deadline) => {
                if self.committed.load(Ordering::Acquire) {
                    return work.await;
                }
                Err(error)
            }
            result = &mut work => result,
        }
    }

    /// Completes, with the error to report, when `deadline` passes or the statement is
    /// cancelled.
    async fn stopped(&self, deadline: Option<(Duration, Instant)>) -> SchedulerError {
        let expired = async {
            match deadline {
                Some((timeout, at)) => {
                    tokio::time::sleep_until(at).await;
                    timeout
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => SchedulerError::Canceled,
            timeout = expired => SchedulerError::StatementTimeout { timeout },
        }
    }

    /// Why the statement was stopped: cancelled, or past its deadline.
    fn stop_reason(&self) -> SchedulerError {
        match self.deadline {
            Some((timeout, _)) if !self.cancel.is_cancelled() => {
                SchedulerError::StatementTimeout { timeout }
            }
            _ => SchedulerError::Canceled,
        }
    }

    /// The rows of a query started by `start` once a slot is free, bounded by the
    /// statement's deadline and cancellation whether or not the stream is being read; the
    /// slot is held until the stream ends, is stopped, or is dropped.
    pub fn stream(
        self,
        schema: SchemaRef,
        start: impl FnOnce() -> Result<SendableRecordBatchStream> + Send + 'static,
    ) -> SendableRecordBatchStream {
        let query = QueryStream {
            control: self,
            running: Arc::default(),
            start: Some(Box::new(start)),
            _watching: None,
        };
        let batches = futures::stream::unfold(Some(query), |state| async move {
            let mut query = state?;
            if let Some(starting) = query.start.take() {
                let control = &query.control;
                let admitted = control
                    .bounded(control.deadline, async {
                        let slot = control.admission.admit().await?;
                        Ok((starting()?, slot))
                    })
                    .await;
                match admitted {
                    Ok(started) => {
                        *query.running.lock() = Some(started);
                        query._watching = Some(query.control.watch(&query.running));
                    }
                    Err(e) => return Some((Err(e.into()), None)),
                }
            }
            let running = Arc::clone(&query.running);
            let next = query
                .control
                .bounded(query.control.deadline, async {
                    Ok(
                        futures::future::poll_fn(|cx| match running.lock().as_mut() {
                            Some((inner, _slot)) => inner.poll_next_unpin(cx).map(Some),
                            // Stopped by the watch while nobody read.
                            None => Poll::Ready(None),
                        })
                        .await,
                    )
                })
                .await;
            match next {
                Ok(Some(Some(item))) => Some((item, Some(query))),
                Ok(Some(None)) => None,
                Ok(None) => Some((Err(query.control.stop_reason().into()), None)),
                // The query's stream (and its fragments on the workers) goes with `running`.
                Err(e) => Some((Err(e.into()), None)),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }

    /// Stops `running` at the deadline or the cancel even if nobody polls the stream; the
    /// watch ends when the returned guard is dropped (with the stream).
    fn watch(&self, running: &Arc<Mutex<Option<Running>>>) -> DropGuard {
        let ended = CancellationToken::new();
        let control = self.clone();
        let running = Arc::downgrade(running);
        let watching = ended.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = control.stopped(control.deadline) => {
                    if let Some(running) = running.upgrade() {
                        running.lock().take();
                    }
                }
                _ = watching.cancelled() => {}
            }
        });
        ended.drop_guard()
    }
}

/// A query's stream as [`StatementControl::stream`] runs it.
struct QueryStream {
    control: StatementControl,
    running: Arc<Mutex<Option<Running>>>,
    start: Option<Box<dyn FnOnce() -> Result<SendableRecordBatchStream> + Send>>,
    /// Ends the watch when the stream goes.
    _watching: Option<DropGuard>,
}

/// The earlier of two deadlines.
fn earliest(
    a: Option<(Duration, Instant)>,
    b: Option<(Duration, Instant)>,
) -> Option<(Duration, Instant)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.1 <= b.1 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Schema;

    fn control(timeout_ms: u64, admission: Arc<Admission>) -> StatementControl {
        let settings = SessionSettings {
            statement_timeout: Some(Duration::from_millis(timeout_ms)),
            ..Default::default()
        };
        StatementControl::new(&settings, None, admission)
    }

    fn endless() -> Result<SendableRecordBatchStream> {
        let schema = Arc::new(Schema::empty());
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::pending(),
        )))
    }

    #[tokio::test]
    async fn a_statement_past_its_deadline_ends_and_gives_its_slot_back() {
        let admission = Arc::new(Admission::new(1, 8));
        let late = control(30, Arc::clone(&admission))
            .run(std::future::pending::<Result<()>>())
            .await;
        assert!(matches!(late, Err(SchedulerError::StatementTimeout { .. })));
        assert_eq!(admission.running(), 0);

        let mut rows =
            control(30, Arc::clone(&admission)).stream(Arc::new(Schema::empty()), endless);
        let first = rows.next().await.expect("an error item");
        let error = SchedulerError::from(first.expect_err("an error"));
        assert!(matches!(error, SchedulerError::DataFusion(_)));
        assert_eq!(
            tonic::Status::from(error).code(),
            tonic::Code::DeadlineExceeded
        );
        assert!(rows.next().await.is_none());
        assert_eq!(admission.running(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_query_stops_streaming() {
        let admission = Arc::new(Admission::new(4, 8));
        let statement = control(60_000, Arc::clone(&admission));
        let cancel = statement.cancel_token().clone();
        let mut rows = statement.stream(Arc::new(Schema::empty()), endless);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            cancel.cancel();
        });
        let error = SchedulerError::from(
            rows.next()
                .await
                .expect("test value")
                .expect_err("an error"),
        );
        assert_eq!(tonic::Status::from(error).code(), tonic::Code::Cancelled);
        assert_eq!(admission.running(), 0);
    }
}
