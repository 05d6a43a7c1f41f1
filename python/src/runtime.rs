//! The Tokio runtime the bindings run on, and [`wait`]: blocking on a future with the GIL
//! released, polling for signals so that Ctrl-C interrupts (and cancels) it.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

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
pub fn wait<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut future = Box::pin(future);
    loop {
        // The timer must be created inside the runtime.
        let step = py.detach(|| {
            runtime()
                .block_on(async { tokio::time::timeout(SIGNAL_CHECK_INTERVAL, &mut future).await })
        });
        match step {
            Ok(output) => return Ok(output),
            Err(_) => py.check_signals()?,
        }
    }
}
