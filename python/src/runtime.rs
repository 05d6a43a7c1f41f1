//! The Tokio runtime the bindings run on, and [`wait`]: blocking on a future with the GIL
//! released, polling for signals so that Ctrl-C interrupts (and cancels) it.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// How often a wait wakes up to let Python handle pending signals.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// The process-wide runtime: created on first use, never shut down (it dies with the process).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("shardfusion")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the ShardFusion runtime: {e}"))
    })
}

/// Runs `future` to completion without holding the GIL. If a signal handler raises (Ctrl-C
/// raises `KeyboardInterrupt`), the future is dropped — which cancels a running gRPC call on
/// the server too — and the exception is returned.
///
/// The future is polled on this thread, inside the runtime's context, and the thread sleeps
/// between polls on the standard library's clock, not on a Tokio timer: when an in-process
/// cluster keeps every runtime thread busy with a heavy query, Tokio's timers fire late, and
/// Ctrl-C must still be seen within [`SIGNAL_CHECK_INTERVAL`].
pub fn wait<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut future = Box::pin(future);
    loop {
        let step = py.detach(|| {
            let _context = runtime().enter();
            let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
            let mut cx = Context::from_waker(&waker);
            let deadline = Instant::now() + SIGNAL_CHECK_INTERVAL;
            loop {
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return Some(output);
                }
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                std::thread::park_timeout(deadline - now);
            }
        });
        match step {
            Some(output) => return Ok(output),
            None => py.check_signals()?,
        }
    }
}

/// Wakes the thread that waits in [`wait`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}
