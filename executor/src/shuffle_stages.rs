//! [`ShuffleStages`]: the producer side of worker-to-worker shuffles on one worker.
//!
//! A shuffle producer task is a fragment ending in a hash `RepartitionExec` into the
//! shuffle's `P` partitions. Its consumers (one task per worker) each ask it, with a `DoGet`,
//! for the partitions they own. The first request decodes and starts the task; every request
//! with the same stage key executes its partition of that *same* plan instance, since a
//! `RepartitionExec` runs its input once and routes rows to all of its output partitions.
//!
//! A partition is served once: a second request for it is refused, since its rows already
//! went to the first one. A reader that stops before the end of its partition (a join whose
//! build side came out empty, a satisfied limit) ends only that partition; the task keeps
//! serving the others. Once every partition has been asked for, the task is forgotten here and
//! lives only as long as its readers' streams.
//!
//! A task also ends when it is cancelled (its statement is over; see
//! `shardfusion_common::exchange::shuffle_cancel`) or when it has sat with no reader for
//! [`IDLE_TTL`]. An ended task is remembered for a while, so that a late request for it fails
//! with a clear error instead of starting the task afresh: a second run would send rows twice,
//! and read its own shuffle inputs twice. A task cancelled because its statement failed
//! refuses late requests with the statement's error.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};
use futures::Stream;
use parking_lot::Mutex;
use tonic::Status;

use crate::error::ExecutorError;
use crate::fragment::decode_fragment;

/// How long a producer task may sit with no reader streaming from it and no new request
/// before it is dropped. Statements that end cancel their tasks at once; this only bounds a
/// task whose cancellation never arrived.
pub const IDLE_TTL: Duration = Duration::from_secs(300);

/// How long an ended task's key is remembered, to refuse late requests for it.
const ENDED_MEMORY: Duration = Duration::from_secs(2 * IDLE_TTL.as_secs());

struct RunningStage {
    plan: Arc<dyn ExecutionPlan>,
    /// When the first partition was asked for: the task's start.
    started: Instant,
    served: HashSet<usize>,
    /// How many partitions its consumers read in all.
    readers: usize,
    /// Served partitions whose stream is still alive.
    streaming: usize,
    last_active: Instant,
}

impl RunningStage {
    fn idle_too_long(&self, now: Instant) -> bool {
        self.streaming == 0 && now.duration_since(self.last_active) >= IDLE_TTL
    }
}

/// Why a task is no longer running, for the error a late request gets.
#[derive(Clone)]
enum Ended {
    AllServed,
    /// Its statement is over; with the error it failed with, if it did.
    Cancelled(Option<Status>),
    Idle,
}

#[derive(Default)]
struct Stages {
    running: HashMap<String, RunningStage>,
    ended: HashMap<String, (Ended, Instant)>,
}

impl Stages {
    fn end(&mut self, stage_key: &str, why: Ended, now: Instant) -> Option<RunningStage> {
        let stage = self.running.remove(stage_key);
        if stage.is_some() {
            self.ended.insert(stage_key.to_string(), (why, now));
        }
        stage
    }

    fn expire(&mut self, now: Instant) {
        let idle: Vec<String> = self
            .running
            .iter()
            .filter(|(_, stage)| stage.idle_too_long(now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in idle {
            self.end(&key, Ended::Idle, now);
        }
        self.ended
            .retain(|_, (_, at)| now.duration_since(*at) < ENDED_MEMORY);
    }
}

/// The shuffle producer tasks running on this worker; see the module docs.
#[derive(Default)]
pub struct ShuffleStages {
    stages: Mutex<Stages>,
}

impl ShuffleStages {
    /// Output partition `partition` of the producer task `stage_key`, starting the task from
    /// `plan` if this is the first request for it.
    /// `readers` is how many partitions its consumers read in all (0: every partition).
    pub fn partition(
        self: &Arc<Self>,
        stage_key: &str,
        plan: &[u8],
        partition: usize,
        readers: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<ServedPartition, ExecutorError> {
        let now = Instant::now();
        let mut stages = self.stages.lock();
        stages.expire(now);
        if let Some((why, _)) = stages.ended.get(stage_key) {
            let why = match why {
                Ended::AllServed => "every partition of it was already read",
                Ended::Cancelled(None) => "its statement is over",
                Ended::Cancelled(Some(failure)) => {
                    return Err(ExecutorError::StatementFailed {
                        what: format!("partition {partition} of shuffle task {stage_key}"),
                        failure: failure.clone(),
                    });
                }
                Ended::Idle => "it waited too long for its readers",
            };
            return Err(ExecutorError::BadRequest {
                reason: format!(
                    "partition {partition} of shuffle task {stage_key} cannot be served: the \
                     task has ended ({why})"
                ),
            });
        }
        if !stages.running.contains_key(stage_key) {
            let decoded = decode_fragment(plan, &ctx)?;
            check_producer(&decoded)?;
            let count = decoded.output_partitioning().partition_count();
            stages.running.insert(
                stage_key.to_string(),
                RunningStage {
                    plan: decoded,
                    started: now,
                    served: HashSet::new(),
                    readers: if readers == 0 {
                        count
                    } else {
                        readers.min(count)
                    },
                    streaming: 0,
                    last_active: now,
                },
            );
        }
        let Some(stage) = stages.running.get_mut(stage_key) else {
            return Err(ExecutorError::BadRequest {
                reason: format!("shuffle task {stage_key} is not running"),
            });
        };
        let count = stage.plan.output_partitioning().partition_count();
        if partition >= count {
            return Err(ExecutorError::BadRequest {
                reason: format!("shuffle task {stage_key} has {count} partitions, not {partition}"),
            });
        }
        if !stage.served.insert(partition) {
            return Err(ExecutorError::BadRequest {
                reason: format!(
                    "partition {partition} of shuffle task {stage_key} was already read; \
                     shuffle partitions are served once"
                ),
            });
        }
        stage.streaming += 1;
        stage.last_active = now;
        let (plan, started) = (Arc::clone(&stage.plan), stage.started);
        if stage.served.len() >= stage.readers {
            stages.end(stage_key, Ended::AllServed, now);
        }
        drop(stages);
        Ok(ServedPartition {
            stream: Box::pin(Served {
                rows: plan.execute(partition, ctx)?,
                stages: Arc::clone(self),
                stage_key: stage_key.to_string(),
            }),
            plan,
            started,
        })
    }

    /// Ends the producer tasks `stage_keys` (their statement is over, having failed with
    /// `failure` if it did): each one's plan is dropped as soon as the streams it still serves
    /// are gone, and later requests for it are refused, with `failure` if there is one.
    /// Returns the plans of the tasks that were running, whose own shuffle inputs the caller
    /// cancels in turn.
    pub fn cancel(
        &self,
        stage_keys: &[String],
        failure: Option<Status>,
    ) -> Vec<Arc<dyn ExecutionPlan>> {
        let now = Instant::now();
        let mut stages = self.stages.lock();
        let mut plans = Vec::new();
        for key in stage_keys {
            let why = Ended::Cancelled(failure.clone());
            if let Some(stage) = stages.end(key, why.clone(), now) {
                plans.push(stage.plan);
            } else {
                let ended = stages
                    .ended
                    .entry(key.clone())
                    .or_insert((why.clone(), now));
                // The first cancel to say why the statement failed is the one remembered.
                if matches!(ended.0, Ended::Cancelled(None)) {
                    ended.0 = why;
                }
            }
        }
        plans
    }

    /// A served partition's stream went away (at its end or before).
    fn stream_gone(&self, stage_key: &str) {
        if let Some(stage) = self.stages.lock().running.get_mut(stage_key) {
            stage.streaming = stage.streaming.saturating_sub(1);
            stage.last_active = Instant::now();
        }
    }

    /// How many producer tasks wait for consumers here.
    pub fn len(&self) -> usize {
        self.stages.lock().running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One partition of a producer task, as served to its reader.
pub struct ServedPartition {
    pub stream: SendableRecordBatchStream,
    /// The task's plan (shared by its partitions), for its report.
    pub plan: Arc<dyn ExecutionPlan>,
    /// When the task started.
    pub started: Instant,
}

/// One served partition's rows: tells the stages when its reader went away.
struct Served {
    rows: SendableRecordBatchStream,
    stages: Arc<ShuffleStages>,
    stage_key: String,
}

impl Stream for Served {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rows.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for Served {
    fn schema(&self) -> SchemaRef {
        self.rows.schema()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stages.stream_gone(&self.stage_key);
    }
}

/// A producer task must end in a hash or range repartition: that is what makes its
/// partitions a shuffle.
fn check_producer(plan: &Arc<dyn ExecutionPlan>) -> Result<(), ExecutorError> {
    let hashed = plan.downcast_ref::<RepartitionExec>().is_some_and(|r| {
        matches!(
            r.partitioning(),
            Partitioning::Hash(_, _) | Partitioning::Range(_)
        )
    });
    if hashed {
        Ok(())
    } else {
        Err(ExecutorError::BadRequest {
            reason: format!(
                "a shuffle task must end in a hash or range RepartitionExec, not {}",
                plan.name()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_expr::expressions::col;
    use datafusion::prelude::SessionContext;
    use futures::StreamExt;
    use shardfusion_common::codec::encode_plan;

    use super::*;

    const PARTITIONS: usize = 3;

    /// A producer task: 1,000 keys hash-repartitioned into three partitions.
    fn producer() -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let keys = Int64Array::from_iter_values(0..1000);
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(keys)]).expect("batch");
        let source = MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&schema), None)
            .expect("memory source");
        let key = col("k", &schema).expect("column k");
        let plan = RepartitionExec::try_new(source, Partitioning::Hash(vec![key], PARTITIONS))
            .expect("repartition");
        encode_plan(Arc::new(plan)).expect("encodes")
    }

    fn serve(
        stages: &Arc<ShuffleStages>,
        key: &str,
        partition: usize,
    ) -> Result<SendableRecordBatchStream, ExecutorError> {
        let ctx = SessionContext::new().task_ctx();
        stages
            .partition(key, &producer(), partition, PARTITIONS, ctx)
            .map(|served| served.stream)
    }

    async fn count(stream: SendableRecordBatchStream) -> usize {
        stream
            .map(|batch| batch.expect("batch").num_rows())
            .fold(0, |sum, rows| async move { sum + rows })
            .await
    }

    fn refusal(answer: Result<SendableRecordBatchStream, ExecutorError>) -> String {
        match answer {
            Ok(_) => panic!("the request was served"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn a_reader_that_stops_early_leaves_the_task_serving_the_others() {
        let stages = Arc::new(ShuffleStages::default());
        let mut whole = Vec::new();
        for partition in 0..PARTITIONS {
            whole.push(count(serve(&stages, "whole", partition).expect("served")).await);
        }
        assert_eq!(whole.iter().sum::<usize>(), 1000);

        // The first reader drops its partition unread: the task keeps running for the others,
        // and the dropped partition is not served again by a fresh run.
        drop(serve(&stages, "early", 0).expect("served"));
        assert_eq!(stages.len(), 1, "the task is still running");
        let again = refusal(serve(&stages, "early", 0));
        assert!(again.contains("already read"), "{again}");
        assert_eq!(
            count(serve(&stages, "early", 1).expect("served")).await,
            whole[1]
        );
        assert_eq!(
            count(serve(&stages, "early", 2).expect("served")).await,
            whole[2]
        );

        // Every partition was asked for: the task has ended, and says so to a late request.
        assert!(stages.is_empty());
        let late = refusal(serve(&stages, "early", 1));
        assert!(late.contains("has ended"), "{late}");
    }

    #[tokio::test]
    async fn a_cancelled_task_refuses_late_requests_and_hands_back_its_plan() {
        let stages = Arc::new(ShuffleStages::default());
        let first = serve(&stages, "query/run/0/0", 0).expect("served");
        let keys = ["query/run/0/0".to_string(), "never/started".to_string()];
        let cancelled = stages.cancel(&keys, None);
        assert_eq!(cancelled.len(), 1, "the running task's plan comes back");
        assert!(stages.is_empty());
        // A stream already served keeps its rows.
        assert!(count(first).await > 0);
        for (key, partition) in [("query/run/0/0", 1), ("never/started", 0)] {
            let late = refusal(serve(&stages, key, partition));
            assert!(late.contains("its statement is over"), "{key}: {late}");
        }
    }

    #[tokio::test]
    async fn a_task_cancelled_by_a_failure_refuses_late_requests_with_it() {
        let stages = Arc::new(ShuffleStages::default());
        let first = serve(&stages, "failed/run/0/0", 0).expect("served");
        let failure = Status::invalid_argument("Arrow error: Divide by zero error");
        let plans = stages.cancel(&["failed/run/0/0".to_string()], Some(failure.clone()));
        assert_eq!(plans.len(), 1);
        drop(first);
        // A cancel without a reason arriving later (the coordinator dropping the statement)
        // does not hide the failure.
        stages.cancel(
            &["failed/run/0/0".to_string(), "never/run/0/0".to_string()],
            None,
        );
        stages.cancel(&["never/run/0/0".to_string()], Some(failure.clone()));
        for key in ["failed/run/0/0", "never/run/0/0"] {
            let late = match serve(&stages, key, 1) {
                Ok(_) => panic!("{key}: the late request was served"),
                Err(e) => Status::from(e),
            };
            assert_eq!(late.code(), failure.code(), "{key}: {late}");
            assert!(late.message().contains("Divide by zero"), "{key}: {late}");
            assert!(late.message().contains(key), "{key}: {late}");
        }
    }
}
