//! [`ClientSessions`]: the sessions Flight SQL clients open, and the settings each keeps.
//!
//! A client opens a session with `SetSessionOptions`, or with a `SET` statement sent with
//! its session cookie; the answer to the first carries a `set-cookie` header naming the
//! session (`arrow_flight_session_id`, as the Flight protocol suggests), and the client
//! sends it back as `cookie` on later calls (ADBC's Flight SQL driver does so with its
//! cookie middleware on). A client that sends `SET` (through `GetFlightInfo`) without a
//! session gets one the same way: the call runs in a detached session
//! ([`ClientSessions::detached`]), which is kept, and its cookie set, only if its statements
//! changed a setting. A session belongs to the role that opened it: another role's
//! calls with its cookie are refused. Sessions idle for [`SESSION_IDLE`] are forgotten, and
//! at most [`MAX_SESSIONS`] are kept. Calls without a cookie run each statement text in a
//! session of its own, as before sessions existed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::sync::Cache;
use parking_lot::Mutex;

use crate::error::{Result, SchedulerError};
use crate::session::sequence_functions::SessionSequences;
use crate::session::session_settings::SessionSettings;
use crate::session::transaction::Transaction;

/// The cookie naming a client's session.
pub const SESSION_COOKIE: &str = "arrow_flight_session_id";

/// How long an unused session is kept.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);

/// The most sessions kept at once.
pub const MAX_SESSIONS: u64 = 100_000;

/// One client session: its id, its role and its settings.
#[derive(Debug)]
pub struct ClientSession {
    id: String,
    role: String,
    settings: Mutex<SessionSettings>,
    /// Whether a statement changed the settings (a detached session is then kept).
    changed: AtomicBool,
    /// What `nextval` and `setval` returned in it, for `currval` and `lastval`.
    pub sequences: Arc<SessionSequences>,
    /// Its open explicit transaction (`BEGIN` ... `COMMIT`).
    transaction: Mutex<Option<Arc<Transaction>>>,
}

impl ClientSession {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session's own settings (not the server's defaults).
    pub fn settings(&self) -> SessionSettings {
        *self.settings.lock()
    }

    /// Changes the session's settings with `change`; nothing changes if it fails.
    pub fn update(&self, change: impl FnOnce(&mut SessionSettings) -> Result<()>) -> Result<()> {
        let mut settings = self.settings.lock();
        let mut changed = *settings;
        change(&mut changed)?;
        *settings = changed;
        self.changed.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether a statement changed the settings, called a sequence function (whose values
    /// `currval` and `lastval` read later in the session) or left a transaction open.
    pub fn changed(&self) -> bool {
        self.changed.load(Ordering::Acquire)
            || self.sequences.used()
            || self.transaction.lock().is_some()
    }

    /// The session's open explicit transaction.
    pub fn transaction(&self) -> Option<Arc<Transaction>> {
        self.transaction.lock().clone()
    }

    /// Records the session's open explicit transaction (`None` once it ended).
    pub fn set_transaction(&self, transaction: Option<Arc<Transaction>>) {
        *self.transaction.lock() = transaction;
    }

    /// The `set-cookie` header value naming this session.
    pub fn cookie(&self) -> String {
        format!("{SESSION_COOKIE}={}; Path=/; HttpOnly", self.id)
    }
}

/// The open client sessions.
pub struct ClientSessions {
    open: Cache<String, Arc<ClientSession>>,
}

impl Default for ClientSessions {
    fn default() -> Self {
        Self {
            open: Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_idle(SESSION_IDLE)
                .build(),
        }
    }
}

impl std::fmt::Debug for ClientSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSessions")
            .field("open", &self.open.entry_count())
            .finish()
    }
}

impl ClientSessions {
    /// A new, empty session of `role`.
    pub fn open(&self, role: &str) -> Arc<ClientSession> {
        let session = Self::detached(role);
        self.keep(&session);
        session
    }

    /// A new, empty session of `role` that is not kept (yet): for a call without a session,
    /// in case it changes a setting.
    pub fn detached(role: &str) -> Arc<ClientSession> {
        Arc::new(ClientSession {
            id: uuid::Uuid::new_v4().simple().to_string(),
            role: role.to_string(),
            settings: Mutex::default(),
            changed: AtomicBool::new(false),
            sequences: Arc::default(),
            transaction: Mutex::default(),
        })
    }

    /// Opens a new, empty session of `role` under `id`, a session id this server handed out
    /// that is no longer open (it expired, was closed, or the server restarted); `None` if
    /// `id` is not such an id or names a session open now (another role's).
    pub fn reopen(&self, id: &str, role: &str) -> Option<Arc<ClientSession>> {
        let handed_out = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !handed_out || self.open.contains_key(id) {
            return None;
        }
        let session = Arc::new(ClientSession {
            id: id.to_ascii_lowercase(),
            role: role.to_string(),
            settings: Mutex::default(),
            changed: AtomicBool::new(false),
            sequences: Arc::default(),
            transaction: Mutex::default(),
        });
        self.keep(&session);
        Some(session)
    }

    /// Keeps `session` open.
    pub fn keep(&self, session: &Arc<ClientSession>) {
        self.open.insert(session.id.clone(), Arc::clone(session));
    }

    /// The session `id` of `role`; unknown, expired, closed or another role's: not found.
    pub fn find(&self, id: &str, role: &str) -> Result<Arc<ClientSession>> {
        self.open
            .get(id)
            .filter(|session| session.role == role)
            .ok_or_else(|| SchedulerError::SessionNotFound)
    }

    /// Closes the session `id` of `role`.
    pub fn close(&self, id: &str, role: &str) -> Result<()> {
        self.find(id, role)?;
        self.open.invalidate(id);
        Ok(())
    }
}

/// The session id a request's `cookie` headers name, if any.
pub fn session_cookie(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_belongs_to_its_role() {
        let sessions = ClientSessions::default();
        let session = sessions.open("alice");
        session
            .update(|s| s.set("statement_timeout", "5s"))
            .expect("test value");
        let found = sessions.find(session.id(), "alice").expect("test value");
        assert_eq!(found.settings().timeout(), Some(Duration::from_secs(5)));
        assert!(sessions.find(session.id(), "bob").is_err());
        assert!(sessions.close(session.id(), "bob").is_err());
        sessions.close(session.id(), "alice").expect("test value");
        assert!(sessions.find(session.id(), "alice").is_err());
    }

    #[test]
    fn a_failed_update_changes_nothing() {
        let session = ClientSessions::default().open("alice");
        let failed = session.update(|s| {
            s.set("statement_timeout", "5s")?;
            s.set("citus.shard_count", "0")
        });
        assert!(failed.is_err());
        assert_eq!(session.settings(), SessionSettings::default());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert(
            "cookie",
            "a=1; arrow_flight_session_id=abc ; b=2"
                .parse()
                .expect("test value"),
        );
        assert_eq!(session_cookie(&metadata).as_deref(), Some("abc"));
        assert_eq!(session_cookie(&tonic::metadata::MetadataMap::new()), None);
    }
}
