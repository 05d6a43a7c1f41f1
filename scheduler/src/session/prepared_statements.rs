//! [`PreparedStatements`]: the SQL of the Flight SQL prepared statements clients hold open,
//! bounded in time and in size.
//!
//! Flight SQL has no session: a prepared statement is a handle the client sends back, and it
//! may do so over any connection. Nothing tells the server that a client went away, so a
//! client that never closes its statements would grow the coordinator without end. Bounds:
//!
//! - **Idle expiry**: a statement not created, executed or described for
//!   [`PreparedStatementLimits::idle_timeout`] is dropped (executing it then says so).
//! - **Per client**: one client (the peer address of the connection that created the
//!   statement: host *and* port, i.e. one Flight SQL connection, since clients keep one
//!   HTTP/2 connection) holds at most [`PreparedStatementLimits::per_client`] statements and
//!   [`PreparedStatementLimits::per_client_bytes`] of their text.
//! - **Globally**: all clients together hold at most
//!   [`PreparedStatementLimits::total_bytes`] of statement text (a client opening many
//!   connections cannot get around the per-client cap).
//!
//! - **Parameters**: the rows bound to one statement hold at most
//!   [`PreparedStatementLimits::per_client_bytes`].
//!
//! Creating one past a bound fails with `ResourceExhausted`, asking the client to close
//! prepared statements; closing one frees its slot and its memory at once. Handles are
//! random UUIDs, so only their creator can name them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datafusion::common::ScalarValue;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use parking_lot::Mutex;
use std::collections::HashMap;
use tonic::Status;

/// Bounds on open prepared statements. Operators set them with the environment variables
/// named in [`PreparedStatementLimits::from_env`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparedStatementLimits {
    /// A statement unused this long is dropped.
    pub idle_timeout: Duration,
    /// Open statements per client (peer address).
    pub per_client: usize,
    /// Bytes of statement text one client holds.
    pub per_client_bytes: usize,
    /// Bytes of statement text held for all clients together.
    pub total_bytes: usize,
}

impl Default for PreparedStatementLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(3600),
            per_client: 256,
            per_client_bytes: 32 * 1024 * 1024,
            total_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What each held statement costs besides its text (handle, entry, bookkeeping): so that
/// empty statements are not free.
const ENTRY_OVERHEAD_BYTES: usize = 256;

impl PreparedStatementLimits {
    /// The defaults, overridden by `SHARDFUSION_PREPARED_STATEMENT_IDLE_SECS`,
    /// `SHARDFUSION_PREPARED_STATEMENTS_PER_CLIENT`,
    /// `SHARDFUSION_PREPARED_STATEMENT_BYTES_PER_CLIENT` and
    /// `SHARDFUSION_PREPARED_STATEMENT_BYTES` where set. A value that is not a positive integer is reported and ignored.
    pub fn from_env() -> Self {
        let mut limits = Self::default();
        if let Some(secs) = env_number("SHARDFUSION_PREPARED_STATEMENT_IDLE_SECS") {
            limits.idle_timeout = Duration::from_secs(secs as u64);
        }
        if let Some(n) = env_number("SHARDFUSION_PREPARED_STATEMENTS_PER_CLIENT") {
            limits.per_client = n;
        }
        if let Some(n) = env_number("SHARDFUSION_PREPARED_STATEMENT_BYTES_PER_CLIENT") {
            limits.per_client_bytes = n;
        }
        if let Some(n) = env_number("SHARDFUSION_PREPARED_STATEMENT_BYTES") {
            limits.total_bytes = n;
        }
        limits
    }
}

fn env_number(name: &str) -> Option<usize> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            tracing::warn!("ignoring {name}={value:?}: expected a positive integer");
            None
        }
    }
}

/// One open prepared statement.
#[derive(Debug)]
struct Prepared {
    sql: String,
    owner: Option<SocketAddr>,
    /// The role that prepared it: only that role may run or close it.
    role: String,
    /// The parameter rows bound last (`DoPut`), each one value per placeholder.
    bound: Mutex<Vec<Vec<ScalarValue>>>,
    /// The Flight SQL transaction it was prepared in: it runs there.
    transaction: Option<Vec<u8>>,
}

impl Prepared {
    fn cost(&self) -> usize {
        self.sql.len() + ENTRY_OVERHEAD_BYTES
    }
}

/// What some open statements hold.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    statements: usize,
    bytes: usize,
}

/// What the open statements hold, per client and in all.
#[derive(Debug, Default)]
struct Usage {
    per_client: HashMap<Option<SocketAddr>, Held>,
    bytes: usize,
}

impl Usage {
    fn release(&mut self, prepared: &Prepared) {
        self.bytes = self.bytes.saturating_sub(prepared.cost());
        if let Some(held) = self.per_client.get_mut(&prepared.owner) {
            held.statements = held.statements.saturating_sub(1);
            held.bytes = held.bytes.saturating_sub(prepared.cost());
            if held.statements == 0 {
                self.per_client.remove(&prepared.owner);
            }
        }
    }
}

/// The open prepared statements of a coordinator.
#[derive(Clone)]
pub struct PreparedStatements {
    /// Handle → statement; entries expire when idle (moka tracks access times).
    statements: Cache<String, Arc<Prepared>>,
    /// Updated under its lock on every insert and (by the eviction listener) every removal.
    usage: Arc<Mutex<Usage>>,
    limits: PreparedStatementLimits,
}

impl std::fmt::Debug for PreparedStatements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedStatements")
            .field("usage", &self.usage)
            .field("limits", &self.limits)
            .finish()
    }
}

impl PreparedStatements {
    pub fn new(limits: PreparedStatementLimits) -> Self {
        let usage = Arc::new(Mutex::new(Usage::default()));
        let listener_usage = Arc::clone(&usage);
        let statements = Cache::builder()
            .time_to_idle(limits.idle_timeout)
            .eviction_listener(move |_handle, prepared: Arc<Prepared>, cause| {
                // `Replaced` never happens (handles are fresh UUIDs); every other cause
                // (closed, expired) ends the statement.
                if !matches!(cause, RemovalCause::Replaced) {
                    listener_usage.lock().release(&prepared);
                }
            })
            .build();
        Self {
            statements,
            usage,
            limits,
        }
    }

    pub fn limits(&self) -> PreparedStatementLimits {
        self.limits
    }

    /// Holds `sql` for client `owner`, logged in as `role`; returns its handle, or
    /// `ResourceExhausted` past a limit.
    pub fn create(
        &self,
        sql: String,
        owner: Option<SocketAddr>,
        role: &str,
        transaction: Option<Vec<u8>>,
    ) -> Result<String, Status> {
        // Drop expired statements first, so that their slots count as free.
        self.statements.run_pending_tasks();
        let prepared = Arc::new(Prepared {
            sql,
            owner,
            role: role.to_string(),
            bound: Default::default(),
            transaction,
        });
        {
            let mut usage = self.usage.lock();
            let held = usage.per_client.get(&owner).copied().unwrap_or_default();
            if held.statements >= self.limits.per_client {
                return Err(Status::resource_exhausted(format!(
                    "this client already holds {} open prepared statements, the most \
                     allowed (SHARDFUSION_PREPARED_STATEMENTS_PER_CLIENT): close prepared \
                     statements you no longer use (ClosePreparedStatement, e.g. close() in \
                     ADBC or JDBC); unused ones expire after {} s",
                    held.statements,
                    self.limits.idle_timeout.as_secs()
                )));
            }
            if held.bytes + prepared.cost() > self.limits.per_client_bytes {
                return Err(Status::resource_exhausted(format!(
                    "this client's open prepared statements hold {} bytes of SQL, and this \
                     one ({} bytes) would pass the limit of {} bytes per client \
                     (SHARDFUSION_PREPARED_STATEMENT_BYTES_PER_CLIENT): close prepared \
                     statements you no longer use; unused ones expire after {} s",
                    held.bytes,
                    prepared.sql.len(),
                    self.limits.per_client_bytes,
                    self.limits.idle_timeout.as_secs()
                )));
            }
            if usage.bytes + prepared.cost() > self.limits.total_bytes {
                return Err(Status::resource_exhausted(format!(
                    "open prepared statements hold {} bytes of SQL, and this one ({} bytes) \
                     would pass the coordinator's limit of {} bytes \
                     (SHARDFUSION_PREPARED_STATEMENT_BYTES): close prepared statements you \
                     no longer use; unused ones expire after {} s",
                    usage.bytes,
                    prepared.sql.len(),
                    self.limits.total_bytes,
                    self.limits.idle_timeout.as_secs()
                )));
            }
            let held = usage.per_client.entry(owner).or_default();
            held.statements += 1;
            held.bytes += prepared.cost();
            usage.bytes += prepared.cost();
        }
        let handle = uuid::Uuid::new_v4().to_string();
        self.statements.insert(handle.clone(), prepared);
        Ok(handle)
    }

    /// The SQL of statement `handle`, prepared by `role` (which counts as a use). Another
    /// role's handle is not found, as if it did not exist.
    pub fn sql(&self, handle: &str, role: &str) -> Result<String, Status> {
        Ok(self.prepared(handle, role)?.sql.clone())
    }

    /// The SQL of statement `handle` and the parameter rows bound to it.
    pub fn sql_and_parameters(
        &self,
        handle: &str,
        role: &str,
    ) -> Result<(String, Vec<Vec<ScalarValue>>), Status> {
        let prepared = self.prepared(handle, role)?;
        let bound = prepared.bound.lock().clone();
        Ok((prepared.sql.clone(), bound))
    }

    /// The Flight SQL transaction statement `handle` was prepared in, if any.
    pub fn transaction(&self, handle: &str, role: &str) -> Result<Option<Vec<u8>>, Status> {
        Ok(self.prepared(handle, role)?.transaction.clone())
    }

    /// Binds parameter `rows` to statement `handle` (replacing those bound before). The
    /// values count towards the statement's size as its text does.
    pub fn bind(
        &self,
        handle: &str,
        role: &str,
        rows: Vec<Vec<ScalarValue>>,
    ) -> Result<(), Status> {
        let prepared = self.prepared(handle, role)?;
        let bytes: usize = rows.iter().flatten().map(|v| v.size()).sum();
        if bytes > self.limits.per_client_bytes {
            return Err(Status::resource_exhausted(format!(
                "{bytes} bytes of parameters are more than a client may hold \
                 ({} bytes, SHARDFUSION_PREPARED_STATEMENT_BYTES_PER_CLIENT)",
                self.limits.per_client_bytes
            )));
        }
        *prepared.bound.lock() = rows;
        Ok(())
    }

    fn prepared(&self, handle: &str, role: &str) -> Result<Arc<Prepared>, Status> {
        self.statements
            .get(handle)
            .filter(|prepared| prepared.role == role)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "prepared statement not found: it was closed, or unused for more than \
                     {} s; prepare it again",
                    self.limits.idle_timeout.as_secs()
                ))
            })
    }

    /// Closes statement `handle`, freeing its slot and memory. Closing an unknown (closed or
    /// expired) handle is not an error: the client's intent is met.
    pub fn close(&self, handle: &str, role: &str) {
        if self
            .statements
            .get(handle)
            .is_none_or(|prepared| prepared.role != role)
        {
            return;
        }
        self.statements.invalidate(handle);
        // Removal notifications are delivered during maintenance: run it now, so that the
        // slot is free as soon as the close is acknowledged.
        self.statements.run_pending_tasks();
    }

    /// How many statements are open, and their bytes (expired ones dropped first).
    pub fn usage(&self) -> (usize, usize) {
        self.statements.run_pending_tasks();
        let usage = self.usage.lock();
        let statements = usage.per_client.values().map(|h| h.statements).sum();
        (statements, usage.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_client: usize, total_bytes: usize) -> PreparedStatementLimits {
        PreparedStatementLimits {
            idle_timeout: Duration::from_secs(3600),
            per_client,
            per_client_bytes: total_bytes,
            total_bytes,
        }
    }

    fn peer(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn each_client_has_its_own_cap_and_closing_frees_a_slot() {
        let prepared = PreparedStatements::new(limits(2, 1 << 20));
        let a = prepared
            .create("SELECT 1".into(), peer(1), "alice", None)
            .expect("first");
        prepared
            .create("SELECT 2".into(), peer(1), "alice", None)
            .expect("second");
        let refused = prepared
            .create("SELECT 3".into(), peer(1), "alice", None)
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("close prepared statements"));
        prepared
            .create("SELECT 3".into(), peer(2), "alice", None)
            .expect("another client");
        // Another role cannot use (nor close) alice's statement.
        assert_eq!(
            prepared.sql(&a, "bob").expect_err("refused").code(),
            tonic::Code::NotFound
        );
        prepared.close(&a, "bob");
        assert!(prepared.sql(&a, "alice").is_ok());
        prepared.close(&a, "alice");
        assert_eq!(
            prepared.sql(&a, "alice").expect_err("refused").code(),
            tonic::Code::NotFound
        );
        prepared
            .create("SELECT 4".into(), peer(1), "alice", None)
            .expect("a freed slot");
        assert_eq!(prepared.usage().0, 3);
    }

    #[test]
    fn one_client_cannot_hold_much_text() {
        let mut limits = limits(100, 1 << 30);
        limits.per_client_bytes = 2 * (1000 + ENTRY_OVERHEAD_BYTES);
        let prepared = PreparedStatements::new(limits);
        let sql = "x".repeat(1000);
        prepared
            .create(sql.clone(), peer(1), "alice", None)
            .expect("fits");
        prepared
            .create(sql.clone(), peer(1), "alice", None)
            .expect("fits");
        let refused = prepared
            .create(sql.clone(), peer(1), "alice", None)
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        prepared
            .create(sql, peer(2), "alice", None)
            .expect("another client");
    }

    #[test]
    fn total_bytes_are_capped_across_clients() {
        let prepared = PreparedStatements::new(limits(100, 3 * (1000 + ENTRY_OVERHEAD_BYTES)));
        let sql = "x".repeat(1000);
        for port in 0..3 {
            prepared
                .create(sql.clone(), peer(port), "alice", None)
                .expect("fits");
        }
        let refused = prepared
            .create(sql, peer(9), "alice", None)
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn idle_statements_expire_and_free_their_slot() {
        let prepared = PreparedStatements::new(PreparedStatementLimits {
            idle_timeout: Duration::from_millis(200),
            per_client: 1,
            per_client_bytes: 1 << 20,
            total_bytes: 1 << 20,
        });
        let handle = prepared
            .create("SELECT 1".into(), None, "alice", None)
            .expect("created");
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            prepared.sql(&handle, "alice").expect_err("refused").code(),
            tonic::Code::NotFound
        );
        prepared
            .create("SELECT 2".into(), None, "alice", None)
            .expect("the slot is free again");
        assert_eq!(
            prepared.usage(),
            (1, "SELECT 2".len() + ENTRY_OVERHEAD_BYTES)
        );
    }
}
