//! [`StatementControl`]: what bounds one statement while it runs — its deadline
//! (`statement_timeout`), its cancellation, its slot ([`Admission`]) and its memory
//! (`datafusion.runtime.memory_limit`).
//!
//! Statements that run before their call returns (DDL, DML) run inside
//! [`StatementControl::run`]; a query's rows stream through [`StatementControl::stream`],
//! which takes a slot again when the first batch is asked for. Either way, the statement
//! ends at its deadline with `DeadlineExceeded` (SQLSTATE 57014), or when cancelled with
//! `Cancelled` (57014), and what it was running is dropped: a query's fragments on the
//! workers are cancelled with their streams, and a write that had not committed leaves
//! nothing behind but files the orphan cleanup removes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use shardfusion_common::query_limits::limited_task_context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Result, SchedulerError};
use crate::limits::admission::{Admission, AdmissionSlot};
use crate::session::session_settings::SessionSettings;

/// The bounds of one statement.
#[derive(Debug, Clone)]
pub struct StatementControl {
    /// The timeout and when it runs out, counted from the statement's start.
    deadline: Option<(Duration, Instant)>,
    cancel: CancellationToken,
    memory_limit: Option<usize>,
    admission: Arc<Admission>,
}

impl StatementControl {
    /// Bounds for a statement starting now under `settings` (the session's, over the
    /// server's defaults), cancelled by `cancel`; `call_timeout` (the client's deadline for
    /// the call) shortens the statement timeout.
    pub fn new(
        settings: &SessionSettings,
        call_timeout: Option<Duration>,
        cancel: CancellationToken,
        admission: Arc<Admission>,
    ) -> Self {
        let timeout = match (settings.timeout(), call_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            deadline: timeout.map(|t| (t, Instant::now() + t)),
            cancel,
            memory_limit: settings.query_memory_limit(),
            admission,
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

    /// Runs `work` once a slot is free, until it ends, the deadline passes or the
    /// statement is cancelled (then `work` is dropped).
    pub async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.bounded(async {
            let _slot = self.admission.admit().await?;
            work.await
        })
        .await
    }

    /// `work`, unless the deadline passes or the statement is cancelled first.
    async fn bounded<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let expired = async {
            match self.deadline {
                Some((timeout, at)) => {
                    tokio::time::sleep_until(at).await;
                    timeout
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(SchedulerError::Canceled),
            timeout = expired => Err(SchedulerError::StatementTimeout { timeout }),
            result = work => result,
        }
    }

    /// The rows of a query started by `start` once a slot is free, each batch bounded by
    /// the deadline and cancellation; the slot is held until the stream ends or is dropped.
    pub fn stream(
        self,
        schema: SchemaRef,
        start: impl FnOnce() -> Result<SendableRecordBatchStream> + Send + 'static,
    ) -> SendableRecordBatchStream {
        type Running = (SendableRecordBatchStream, AdmissionSlot);
        type Start = Box<dyn FnOnce() -> Result<SendableRecordBatchStream> + Send>;
        let first: (Self, Option<Running>, Option<Start>) = (self, None, Some(Box::new(start)));
        let batches = futures::stream::unfold(Some(first), |state| async move {
            let (control, mut running, mut start) = state?;
            if running.is_none() {
                let starting = start.take().expect("a query starts once");
                let admitted = control
                    .bounded(async {
                        let slot = control.admission.admit().await?;
                        Ok((starting()?, slot))
                    })
                    .await;
                match admitted {
                    Ok(started) => running = Some(started),
                    Err(e) => return Some((Err(e.into()), None)),
                }
            }
            let (inner, _slot) = running.as_mut().expect("started above");
            match control.bounded(async { Ok(inner.next().await) }).await {
                Ok(Some(item)) => Some((item, Some((control, running, start)))),
                Ok(None) => None,
                // The query's stream (and its fragments on the workers) goes with `running`.
                Err(e) => Some((Err(e.into()), None)),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
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
        StatementControl::new(&settings, None, CancellationToken::new(), admission)
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
