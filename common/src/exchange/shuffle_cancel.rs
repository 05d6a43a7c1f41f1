//! Stopping shuffle producer tasks whose statement is over.
//!
//! A producer task serves each of its partitions once and is forgotten when every partition
//! has been asked for. A consumer that stops reading a partition early (a join whose build
//! side came out empty, a satisfied limit) does not stop the task: other consumers may still
//! come for their partitions, and a task started afresh would read its own inputs twice.
//! What ends a task early is the end of its statement, said by whoever knows it:
//! - the coordinator, when a statement's plan is dropped (finished, failed or cancelled),
//!   cancels every producer task it started;
//! - a worker whose fragment stream the coordinator dropped before its end (a failed or
//!   cancelled statement, or a coordinator that died) cancels the producers that fragment
//!   reads;
//! - a worker that cancels a producer task cancels, in turn, the producers that task reads.
//!
//! A cancel says why the statement ended when a fragment failed: a consumer that asks a
//! cancelled task for its partition afterwards is refused with that error, so whichever
//! reader reaches the coordinator first reports the statement's cause (a division by zero
//! in a producer, say), never "the statement is over".
//!
//! Cancelling is best effort and in the background: a task on a worker that cannot be
//! reached is also dropped there after its idle timeout.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_plan::ExecutionPlan;
use futures::Stream;

use super::shuffle_read::{ShuffleProducer, ShuffleReadExec};
use super::transport::{TaskTarget, Transport};
use crate::status::to_status;
use crate::wire::CancelShufflesRequest;

/// The producer tasks `plan`'s shuffle reads draw from.
pub fn producers_in(plan: &Arc<dyn ExecutionPlan>) -> Vec<ShuffleProducer> {
    let mut producers = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(source) = node
            .downcast_ref::<ShuffleReadExec>()
            .and_then(ShuffleReadExec::source)
        {
            producers.extend(source.producers.iter().cloned());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    producers
}

/// Cancels `producers` through `transport`, one request per worker, in the background of the
/// current Tokio runtime (nothing happens outside one). `failure` is the error that ended
/// their statement, if it failed.
pub fn cancel_producers(
    transport: Arc<dyn Transport>,
    producers: impl IntoIterator<Item = ShuffleProducer>,
    failure: Option<&tonic::Status>,
) {
    let mut by_target: HashMap<TaskTarget, Vec<String>> = HashMap::new();
    for producer in producers {
        let keys = by_target.entry(producer.target).or_default();
        if !keys.contains(&producer.stage_key) {
            keys.push(producer.stage_key);
        }
    }
    if by_target.is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for (target, stage_keys) in by_target {
        let transport = Arc::clone(&transport);
        let request = CancelShufflesRequest::new(stage_keys, failure);
        runtime.spawn(async move {
            if let Err(e) = transport.cancel_shuffles(&target, request).await {
                tracing::debug!(worker = %target.label, error = %e, "cancelling shuffle tasks failed");
            }
        });
    }
}

/// `rows` (a fragment's answer to the coordinator), cancelling `producers` if it is dropped
/// before its end: the fragment failed or the coordinator stopped reading, so its statement
/// is over. A failure is passed on with the cancel.
pub fn cancelling_on_early_drop(
    rows: SendableRecordBatchStream,
    transport: Arc<dyn Transport>,
    producers: Vec<ShuffleProducer>,
) -> SendableRecordBatchStream {
    if producers.is_empty() {
        return rows;
    }
    Box::pin(CancelOnEarlyDrop {
        rows,
        pending: Some((transport, producers)),
        failure: None,
    })
}

struct CancelOnEarlyDrop {
    rows: SendableRecordBatchStream,
    /// What to cancel; taken once the stream has ended.
    pending: Option<(Arc<dyn Transport>, Vec<ShuffleProducer>)>,
    /// The error the fragment failed with, if it did.
    failure: Option<tonic::Status>,
}

impl Stream for CancelOnEarlyDrop {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.rows.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(None) => self.pending = None,
            Poll::Ready(Some(Err(e))) if self.failure.is_none() => {
                self.failure = Some(to_status(e));
            }
            _ => {}
        }
        next
    }
}

impl RecordBatchStream for CancelOnEarlyDrop {
    fn schema(&self) -> SchemaRef {
        self.rows.schema()
    }
}

impl Drop for CancelOnEarlyDrop {
    fn drop(&mut self) {
        if let Some((transport, producers)) = self.pending.take() {
            cancel_producers(transport, producers, self.failure.as_ref());
        }
    }
}
