//! Running a rebalance plan: in the statement (`rebalance_table_shards()`,
//! `citus_drain_node()`) or as a background job (`citus_rebalance_start()`, watched with
//! `citus_rebalance_status()`, awaited with `citus_rebalance_wait()`, stopped with
//! `citus_rebalance_stop()`), moving several shard groups in
//! parallel when asked (`max_shard_moves`).
//!
//! One rebalance runs at a time. Stopping a job lets the moves already running finish (each
//! commits or leaves its old placement serving) and starts no more.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::SystemTime;

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::watch;

use shardfusion_catalog::CatalogSnapshot;

use crate::cluster::rebalance_plan::PlannedMove;
use crate::cluster::shard_moves::move_shard_group;
use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};

/// A job's state, as Citus's `citus_rebalance_status()` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Finished,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What `citus_rebalance_status()` shows of a job.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub job_id: i64,
    pub state: JobState,
    pub description: String,
    pub started_at: SystemTime,
    pub finished_at: Option<SystemTime>,
    pub planned: usize,
    pub done: usize,
    pub error: Option<String>,
}

/// The current (or last) background rebalance.
#[derive(Debug, Default)]
pub struct RebalanceJobs {
    status: Mutex<Option<JobStatus>>,
    stop: Arc<AtomicBool>,
    /// Tells waiters a job ended.
    finished: Mutex<Option<watch::Receiver<bool>>>,
    /// The background job's task (the last one started).
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Held while any rebalance (a job or a statement's) runs.
    running: Arc<tokio::sync::Mutex<()>>,
    next_id: AtomicUsize,
}

impl RebalanceJobs {
    pub fn status(&self) -> Option<JobStatus> {
        self.status.lock().clone()
    }

    /// Asks the running job to start no more moves; returns whether one was running.
    pub fn stop(&self) -> bool {
        let running = self
            .status
            .lock()
            .as_ref()
            .is_some_and(|s| s.state == JobState::Running);
        if running {
            self.stop.store(true, Ordering::Release);
        }
        running
    }

    /// Waits until the current job (if any) ends; returns its status.
    pub async fn wait(&self) -> Option<JobStatus> {
        let receiver = self.finished.lock().clone();
        if let Some(mut receiver) = receiver {
            let _ = receiver.wait_for(|done| *done).await;
        }
        self.status()
    }
}

/// Plans with `plan` (once no other rebalance runs, on the catalog as it is then) and makes
/// the moves now, `parallel` at a time; returns how many were made. Fails on the first move
/// that fails (the moves made before stay made).
pub async fn run_plan(
    cluster: &Arc<Cluster>,
    plan: impl FnOnce(&CatalogSnapshot) -> Result<Vec<PlannedMove>>,
    parallel: usize,
) -> Result<usize> {
    let _one_rebalance = cluster.moves.job.running.lock().await;
    let moves = plan(&cluster.catalog.snapshot())?;
    cluster.moves.clear_finished();
    execute(cluster, moves, parallel, None).await
}

async fn execute(
    cluster: &Arc<Cluster>,
    moves: Vec<PlannedMove>,
    parallel: usize,
    stop: Option<&AtomicBool>,
) -> Result<usize> {
    let done = AtomicUsize::new(0);
    let mut results = futures::stream::iter(moves)
        .map(|planned| {
            let done = &done;
            async move {
                if stop.is_some_and(|s| s.load(Ordering::Acquire)) {
                    return Ok(());
                }
                move_shard_group(cluster, planned.group, planned.from, planned.to).await?;
                done.fetch_add(1, Ordering::AcqRel);
                if stop.is_none() {
                    return Ok(());
                }
                if let Some(status) = cluster.moves.job.status.lock().as_mut() {
                    status.done += 1;
                }
                Ok::<_, SchedulerError>(())
            }
        })
        .buffer_unordered(parallel.max(1));
    let mut first_error = None;
    while let Some(result) = results.next().await {
        if let Err(e) = result {
            first_error.get_or_insert(e);
            if let Some(stop) = stop {
                stop.store(true, Ordering::Release);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done.load(Ordering::Acquire)),
    }
}

/// Starts `moves` as the background job; returns its id. Refused while another runs.
pub fn start_job(
    cluster: &Arc<Cluster>,
    moves: Vec<PlannedMove>,
    parallel: usize,
    description: String,
) -> Result<i64> {
    let jobs = &cluster.moves.job;
    let Ok(guard) = Arc::clone(&jobs.running).try_lock_owned() else {
        return Err(SchedulerError::cluster_state(
            "a rebalance is already running: see citus_rebalance_status(), or stop it with \
             citus_rebalance_stop()",
        ));
    };
    let job_id = jobs.next_id.fetch_add(1, Ordering::AcqRel) as i64 + 1;
    jobs.stop.store(false, Ordering::Release);
    let (finished, receiver) = watch::channel(false);
    *jobs.finished.lock() = Some(receiver);
    *jobs.status.lock() = Some(JobStatus {
        job_id,
        state: JobState::Running,
        description,
        started_at: SystemTime::now(),
        finished_at: None,
        planned: moves.len(),
        done: 0,
        error: None,
    });
    cluster.moves.clear_finished();
    let task_cluster = Arc::clone(cluster);
    let task = tokio::spawn(async move {
        let cluster = task_cluster;
        let _one_rebalance = guard;
        let stop = Arc::clone(&cluster.moves.job.stop);
        let result = execute(&cluster, moves, parallel, Some(&stop)).await;
        if let Some(status) = cluster.moves.job.status.lock().as_mut() {
            status.finished_at = Some(SystemTime::now());
            status.state = match &result {
                Err(e) => {
                    status.error = Some(e.to_string());
                    JobState::Failed
                }
                Ok(_) if status.done < status.planned => JobState::Cancelled,
                Ok(_) => JobState::Finished,
            };
        }
        let _ = finished.send(true);
    });
    // The job outlives its statement; its handle stays with the jobs until the next one.
    *jobs.task.lock() = Some(task);
    Ok(job_id)
}
