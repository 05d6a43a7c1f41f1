//! [`Admission`]: how many statements run at once on the coordinator, and how many may wait.
//!
//! A statement takes a slot while it plans and runs (DDL and DML), and a query takes one
//! again while its rows stream; a slot is given back when the statement ends, fails, is
//! cancelled or times out. When every slot is taken, statements wait in a queue, first come
//! first served, for as long as their `statement_timeout` allows; when the queue is full too,
//! a statement is refused at once with `ResourceExhausted` (SQLSTATE 53300), and the ones
//! running are unaffected.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Result, SchedulerError};

/// Default number of statements running at once.
pub const DEFAULT_MAX_RUNNING: usize = 64;
/// Default number of statements waiting for a slot.
pub const DEFAULT_MAX_QUEUED: usize = 1024;

/// The coordinator's statement slots and queue.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    max_running: usize,
    max_queued: usize,
    queued: AtomicUsize,
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RUNNING, DEFAULT_MAX_QUEUED)
    }
}

/// A statement's slot: held while it runs, given back when dropped.
#[derive(Debug)]
pub struct AdmissionSlot {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    /// At most `max_running` statements at once (at least one), `max_queued` waiting.
    pub fn new(max_running: usize, max_queued: usize) -> Self {
        let max_running = max_running.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max_running)),
            max_running,
            max_queued,
            queued: AtomicUsize::new(0),
        }
    }

    /// A slot, at once if one is free, else after waiting in the queue; refused when the
    /// queue is full. The caller bounds the wait (statement timeout, cancellation) by dropping
    /// the future.
    pub async fn admit(&self) -> Result<AdmissionSlot> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(AdmissionSlot { _permit: permit });
        }
        let waiting = self.queued.fetch_add(1, Ordering::AcqRel);
        let _in_queue = QueuePlace(&self.queued);
        if waiting >= self.max_queued {
            return Err(SchedulerError::TooManyStatements {
                running: self.max_running,
                queued: self.max_queued,
            });
        }
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the statement semaphore is never closed");
        Ok(AdmissionSlot { _permit: permit })
    }

    /// Statements running now.
    pub fn running(&self) -> usize {
        self.max_running - self.slots.available_permits()
    }

    /// Statements waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// A place in the queue, left when the wait ends (admitted, refused, or given up).
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn statements_wait_for_a_slot_and_a_full_queue_refuses() {
        let admission = Arc::new(Admission::new(1, 1));
        let first = admission.admit().await.expect("a free slot");
        assert_eq!(admission.running(), 1);
        let waiter = {
            let admission = Arc::clone(&admission);
            tokio::spawn(async move { admission.admit().await.map(|_| ()) })
        };
        while admission.queued() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = admission.admit().await.expect_err("an error");
        assert!(matches!(refused, SchedulerError::TooManyStatements { .. }));
        drop(first);
        waiter
            .await
            .expect("test value")
            .expect("admitted once the slot is free");
        assert_eq!(admission.queued(), 0);
        assert_eq!(admission.running(), 0);
    }

    #[tokio::test]
    async fn a_wait_given_up_leaves_the_queue() {
        let admission = Admission::new(1, 4);
        let _slot = admission.admit().await.expect("test value");
        let gave_up = tokio::time::timeout(Duration::from_millis(20), admission.admit()).await;
        assert!(gave_up.is_err());
        assert_eq!(admission.queued(), 0);
    }
}
