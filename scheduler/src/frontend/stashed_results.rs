//! [`StashedResults`]: the results of queries a client ran (`GetFlightInfo`), by handle,
//! until it fetches them (`DoGet`) and while they stream, so that they can be cancelled.
//!
//! A result belongs to the role that ran its statement: another role holding its handle
//! finds nothing and cancels nothing. A result not fetched within [`RESULT_TTL`] is dropped;
//! a streaming one is forgotten when its stream ends. Cancelling (`CancelFlightInfo`,
//! `CancelQuery`) a result not yet fetched makes its fetch fail with `Cancelled`; cancelling
//! a streaming one ends its stream with `Cancelled` and stops its fragments on the workers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::auth::Principal;
use crate::coordinator::StatementOutput;

/// How long an un-fetched result is kept.
pub const RESULT_TTL: Duration = Duration::from_secs(600);

struct Stashed {
    /// Taken by the fetch.
    output: Option<StatementOutput>,
    cancel: Option<CancellationToken>,
    created: Instant,
    owner: Principal,
}

/// What cancelling a result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was waiting or streaming, and is cancelled.
    Now,
    /// It finished (or never was this role's): nothing to cancel.
    NotCancellable,
}

/// The results waiting to be fetched or streaming.
#[derive(Clone, Default)]
pub struct StashedResults {
    results: Arc<Mutex<HashMap<String, Stashed>>>,
}

/// Forgets a streaming result when dropped (its stream ended or was dropped).
pub struct Streaming {
    results: StashedResults,
    handle: String,
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.results.results.lock().remove(&self.handle);
    }
}

impl StashedResults {
    /// Keeps `output` for `owner` to fetch; returns its handle.
    pub fn stash(&self, output: StatementOutput, owner: Principal) -> String {
        let handle = uuid::Uuid::new_v4().to_string();
        let mut results = self.results.lock();
        results.retain(|_, r| r.output.is_none() || r.created.elapsed() < RESULT_TTL);
        results.insert(
            handle.clone(),
            Stashed {
                cancel: output.cancel_token(),
                output: Some(output),
                created: Instant::now(),
                owner,
            },
        );
        handle
    }

    /// The result `handle` of `owner`, once; it stays cancellable while the returned
    /// [`Streaming`] lives.
    pub fn fetch(&self, handle: &str, owner: &Principal) -> Option<(StatementOutput, Streaming)> {
        let mut results = self.results.lock();
        let stashed = results.get_mut(handle).filter(|r| r.owner == *owner)?;
        let output = stashed.output.take()?;
        let streaming = Streaming {
            results: self.clone(),
            handle: handle.to_string(),
        };
        Some((output, streaming))
    }

    /// Cancels the result `handle` of `owner`.
    pub fn cancel(&self, handle: &str, owner: &Principal) -> Cancelled {
        let results = self.results.lock();
        match results.get(handle).filter(|r| r.owner == *owner) {
            Some(Stashed {
                cancel: Some(cancel),
                ..
            }) => {
                cancel.cancel();
                Cancelled::Now
            }
            _ => Cancelled::NotCancellable,
        }
    }
}
