//! [`ShuffleStages`]: the producer side of worker-to-worker shuffles on one worker.
//!
//! A shuffle producer task is a fragment ending in a hash `RepartitionExec` into the
//! shuffle's `P` partitions. Its consumers (one task per worker) each ask it, with a `DoGet`,
//! for the partitions they own. The first request decodes and starts the task; every request
//! with the same stage key executes its partition of that *same* plan instance, since a
//! `RepartitionExec` runs its input once and routes rows to all of its output partitions.
//!
//! Once every partition has been asked for, the task is forgotten here and lives only as long
//! as its consumers' streams. A consumer that stops reading before the end (its statement
//! failed or was cancelled) makes the task forgotten at once, so it stops as soon as its
//! other streams are gone; a task some consumer never asks for is dropped after
//! [`UNCLAIMED_TTL`]. A partition is served
//! once: a second request for it is refused, since its rows already went to the first one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};
use futures::Stream;
use parking_lot::Mutex;

use crate::error::ExecutorError;
use crate::fragment::decode_fragment;

/// How long a producer task waits for all its consumers before it is dropped.
pub const UNCLAIMED_TTL: Duration = Duration::from_secs(300);

struct RunningStage {
    plan: Arc<dyn ExecutionPlan>,
    served: HashSet<usize>,
    started: Instant,
}

/// The shuffle producer tasks running on this worker; see the module docs.
#[derive(Default)]
pub struct ShuffleStages {
    running: Mutex<HashMap<String, RunningStage>>,
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
    ) -> Result<SendableRecordBatchStream, ExecutorError> {
        let mut running = self.running.lock();
        running.retain(|_, stage| stage.started.elapsed() < UNCLAIMED_TTL);
        if !running.contains_key(stage_key) {
            let decoded = decode_fragment(plan, &ctx)?;
            check_producer(&decoded)?;
            running.insert(
                stage_key.to_string(),
                RunningStage {
                    plan: decoded,
                    served: HashSet::new(),
                    started: Instant::now(),
                },
            );
        }
        let Some(stage) = running.get_mut(stage_key) else {
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
        let plan = Arc::clone(&stage.plan);
        let readers = if readers == 0 {
            count
        } else {
            readers.min(count)
        };
        if stage.served.len() == readers {
            running.remove(stage_key);
        }
        drop(running);
        Ok(Box::pin(Served {
            rows: plan.execute(partition, ctx)?,
            stages: Arc::clone(self),
            stage_key: stage_key.to_string(),
            ended: false,
        }))
    }

    /// Forgets producer task `stage_key`: a consumer stopped reading before the end (its
    /// statement failed or was cancelled), so no one else will want it. Once its other
    /// partitions' streams are gone too, the task's plan is dropped and its input stops. A
    /// consumer still to come (one that stopped early on purpose, under a limit) would start
    /// the task afresh, which is correct, only slower.
    fn abandon(&self, stage_key: &str) {
        self.running.lock().remove(stage_key);
    }

    /// How many producer tasks wait for consumers here.
    pub fn len(&self) -> usize {
        self.running.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One served partition: tells the stages when its reader went away before the end.
struct Served {
    rows: SendableRecordBatchStream,
    stages: Arc<ShuffleStages>,
    stage_key: String,
    ended: bool,
}

impl Stream for Served {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.rows.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            self.ended = true;
        }
        next
    }
}

impl RecordBatchStream for Served {
    fn schema(&self) -> SchemaRef {
        self.rows.schema()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if !self.ended {
            self.stages.abandon(&self.stage_key);
        }
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
