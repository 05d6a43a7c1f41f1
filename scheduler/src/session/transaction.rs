//! [`Transaction`]: a multi-statement transaction's snapshot, its uncommitted writes, and
//! their one commit.
//!
//! A transaction takes its catalog snapshot at its first statement, and every statement in it
//! reads that state plus the transaction's own writes (snapshot isolation, reported as
//! `REPEATABLE READ`). A write inside it writes its files on the workers as any statement
//! does, but instead of committing them it records them here ([`Transaction::record`]): the
//! files it added, and the committed (or earlier uncommitted) files it took out. Until
//! `COMMIT` nobody else sees them. `COMMIT` applies the net change of every statement to
//! every table in one catalog transaction ([`shardfusion_catalog::FileChange`]); if another
//! session changed or removed a file this one rewrote or truncated, the commit is refused
//! with a serialization failure (40001) and nothing of the transaction is kept. `ROLLBACK`,
//! an error in an implicit transaction, or a session that goes away drops the transaction,
//! and its files are deleted with it (each statement's [`WrittenFiles`] owes their deletion).
//!
//! While it is open, the transaction is listed in `shardfusion_stat_activity` (state `idle
//! in transaction`), so files its snapshot lists are not deleted under it by other sessions'
//! commits ([`crate::cluster::file_retirement`]).
//!
//! Savepoints mark a point in the list of recorded writes: `ROLLBACK TO SAVEPOINT` drops the
//! writes after it (deleting their files), and the files they took out are visible again.
//!
//! DDL and the Citus functions that create, drop or distribute tables take part too: the
//! first of them branches the catalog ([`crate::session::transaction_branch`]), later ones
//! change the branch, the transaction reads it, and `COMMIT` brings it in together with the
//! file changes, in one catalog transaction.
//!
//! Statements find the transaction they run in through a task-local ([`within`],
//! [`current`]), set by the statement text's loop around the statements that take part in
//! one.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shardfusion_catalog::{Catalog, CatalogError, CatalogSnapshot, ConcurrentChange, FileChange};
use shardfusion_common::ids::{GroupId, PlacementId};

use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};
use crate::monitoring::statement_activity::{ActivityEntry, ActivityState};
use crate::session::session_cache::SharedSession;
use crate::session::session_settings::SessionSettings;
use crate::session::transaction_branch::{BranchMark, DdlBranch};
use crate::write::table_writer::WrittenFiles;

tokio::task_local! {
    static CURRENT: Arc<Transaction>;
}

/// How long a `COMMIT` waits for a shard move's switch of a placement it wrote to.
const MOVE_WAIT: Duration = Duration::from_secs(30);

/// The transaction the running statement takes part in, if any.
pub fn current() -> Option<Arc<Transaction>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `work` as part of `transaction` (or on its own without one).
pub async fn within<F: Future>(transaction: Option<Arc<Transaction>>, work: F) -> F::Output {
    match transaction {
        Some(transaction) => CURRENT.scope(transaction, work).await,
        None => work.await,
    }
}

/// The catalog state the running statement reads: its transaction's view, or the latest
/// committed state.
pub fn statement_snapshot(cluster: &Cluster) -> Result<Arc<CatalogSnapshot>> {
    match current() {
        Some(transaction) => transaction.snapshot(),
        None => Ok(cluster.catalog.snapshot()),
    }
}

/// The shared session the running statement plans in: its transaction's own (over its
/// view), or the one over the latest committed state.
pub fn statement_session(cluster: &Arc<Cluster>) -> Result<Arc<SharedSession>> {
    match current() {
        Some(transaction) => transaction.session(),
        None => cluster.sessions.current(cluster),
    }
}

/// Runs `work` (a statement the frontend runs itself: bulk ingest) in `session`'s open
/// explicit transaction, if any: refused if that transaction failed, and failing it if `work`
/// fails. Without one, `work` commits on its own.
pub async fn in_session_transaction<T>(
    session: Option<&Arc<crate::session::client_sessions::ClientSession>>,
    idle_limit: Option<Duration>,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let Some(transaction) = session.and_then(|s| s.transaction()) else {
        return work.await;
    };
    transaction.touch();
    let done = match transaction.check_usable() {
        Ok(()) => within(Some(Arc::clone(&transaction)), work).await,
        Err(refused) => Err(refused),
    };
    if let Err(e) = &done {
        transaction.fail(e);
    }
    transaction.expire_when_idle(idle_limit);
    done
}

/// How a transaction was begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begun {
    /// By the statements of one text, committed at its end.
    Implicitly,
    /// By `BEGIN` (or `START TRANSACTION`), until `COMMIT` or `ROLLBACK`.
    Explicitly,
}

/// One multi-statement transaction (see the module docs).
pub struct Transaction {
    cluster: Arc<Cluster>,
    /// The role whose session it is.
    role: Arc<str>,
    explicit: AtomicBool,
    read_only: AtomicBool,
    /// Counts the statement texts that used it, so an idle timer knows whether one came.
    uses: AtomicU64,
    /// The session's settings at `BEGIN`, back in force after a `ROLLBACK`.
    settings_at_begin: Mutex<Option<SessionSettings>>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Transaction")
            .field("explicit", &self.explicit.load(Ordering::Relaxed))
            .field("writes", &state.log.len())
            .field("failed", &state.failed)
            .finish()
    }
}

#[derive(Default)]
struct State {
    /// Taken at the first statement.
    view: Option<View>,
    /// Each write's change, in order.
    log: Vec<Logged>,
    /// Savepoint names, the log length each marks and how far DDL had gone, oldest first.
    savepoints: Vec<(String, usize, BranchMark)>,
    /// The catalog branch the transaction's DDL changes, once it ran some.
    branch: Option<DdlBranch>,
    /// Why the transaction failed: until `ROLLBACK` (or `ROLLBACK TO` a savepoint), its
    /// statements are refused.
    failed: Option<String>,
}

struct View {
    base: Arc<CatalogSnapshot>,
    /// Keeps the files `base` lists from being deleted by other sessions' commits.
    _listed: ActivityEntry,
    /// `base` (or the DDL branch) with the log applied, and a session over it; rebuilt after
    /// a write.
    seen: Option<Arc<CatalogSnapshot>>,
    /// The branch state `seen` was built over: DDL since makes it stale.
    seen_over: Option<Arc<CatalogSnapshot>>,
    session: Option<Arc<SharedSession>>,
}

struct Logged {
    change: FileChange,
    /// The added files, owed a commit or a deletion.
    written: WrittenFiles,
}

impl Transaction {
    pub fn new(cluster: &Arc<Cluster>, role: &str, begun: Begun) -> Arc<Self> {
        Arc::new(Self {
            cluster: Arc::clone(cluster),
            role: Arc::from(role),
            explicit: AtomicBool::new(begun == Begun::Explicitly),
            read_only: AtomicBool::new(false),
            uses: AtomicU64::new(0),
            settings_at_begin: Mutex::default(),
            state: Mutex::default(),
        })
    }

    /// Whether `BEGIN` began it (or took over the implicit transaction it ran in).
    pub fn is_explicit(&self) -> bool {
        self.explicit.load(Ordering::Acquire)
    }

    /// `BEGIN` in a text whose statements run in an implicit transaction: it lasts until
    /// `COMMIT` or `ROLLBACK`, with those statements' writes.
    pub fn make_explicit(&self) {
        self.explicit.store(true, Ordering::Release);
    }

    /// A statement text is using it: an idle timer set before does not fire.
    pub fn touch(&self) {
        self.uses.fetch_add(1, Ordering::AcqRel);
    }

    /// Left open between calls: if no statement uses it within `limit`
    /// (`idle_in_transaction_session_timeout`), it is rolled back, and its next statement
    /// is refused saying so.
    pub fn expire_when_idle(self: &Arc<Self>, limit: Option<Duration>) {
        let Some(limit) = limit else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let uses = self.uses.load(Ordering::Acquire);
        let transaction = Arc::downgrade(self);
        runtime.spawn(async move {
            tokio::time::sleep(limit).await;
            let Some(transaction) = transaction.upgrade() else {
                return;
            };
            if transaction.uses.load(Ordering::Acquire) != uses {
                return;
            }
            let log = {
                let mut state = transaction.state.lock();
                state.view = None;
                state.savepoints.clear();
                state.branch = None;
                state.failed.get_or_insert_with(|| {
                    format!(
                        "idle in transaction for longer than idle_in_transaction_session_timeout                          ({}ms): its writes were discarded",
                        limit.as_millis()
                    )
                });
                std::mem::take(&mut state.log)
            };
            drop(log);
        });
    }

    /// Remembers the settings in force at `BEGIN` (the first time only).
    pub fn remember_settings(&self, settings: SessionSettings) {
        self.settings_at_begin.lock().get_or_insert(settings);
    }

    /// The settings in force at `BEGIN`, if remembered.
    pub fn remembered_settings(&self) -> Option<SessionSettings> {
        *self.settings_at_begin.lock()
    }

    /// `READ ONLY` (or `READ WRITE`).
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::Release);
    }

    /// Whether a statement wrote or ran DDL (and has not been rolled back to before it).
    pub fn has_writes(&self) -> bool {
        let state = self.state.lock();
        !state.log.is_empty() || state.branch.is_some()
    }

    /// Moves its writes to `table` into its catalog branch (begun if need be), so that DDL
    /// (distributing the table) reads them as committed rows; they commit or roll back with
    /// the branch. Refused after a savepoint (rolling back to it could not take them out).
    pub fn absorb_writes_into_branch(&self, table: &str) -> Result<()> {
        self.ddl_catalog()?;
        let mut state = self.state.lock();
        if !state.log.iter().any(|l| l.change.table == table) {
            return Ok(());
        }
        if !state.savepoints.is_empty() {
            return Err(SchedulerError::unsupported(format!(
                "changing table \"{table}\" after a SAVEPOINT of the transaction that wrote \
                 rows to it; COMMIT first, or write the rows after it"
            )));
        }
        let (moved, kept): (Vec<Logged>, Vec<Logged>) = std::mem::take(&mut state.log)
            .into_iter()
            .partition(|l| l.change.table == table);
        state.log = kept;
        let branch = state.branch.as_mut().expect("ddl_catalog branched");
        let changes: Vec<FileChange> = moved.iter().map(|l| l.change.clone()).collect();
        let applied = branch.branch.catalog().commit_file_changes(&changes);
        branch.written.extend(moved.into_iter().map(|l| l.written));
        applied?;
        if let Some(view) = &mut state.view {
            view.seen = None;
        }
        Ok(())
    }

    /// Whether its DDL branched the catalog.
    pub fn is_branched(&self) -> bool {
        self.state.lock().branch.is_some()
    }

    /// The catalog its DDL statements change: its branch, begun now if this is its first
    /// DDL statement.
    pub fn ddl_catalog(&self) -> Result<Arc<Catalog>> {
        self.refuse_if_read_only("run DDL")?;
        let mut state = self.state.lock();
        // The view (and its protection of the files it lists) starts first.
        self.seen(&mut state)?;
        if state.branch.is_none() {
            state.branch = Some(DdlBranch::new(&self.cluster)?);
        }
        let branch = state.branch.as_ref().expect("branched above");
        Ok(Arc::clone(branch.branch.catalog()))
    }

    /// Keeps files a DDL statement wrote into the branch until `COMMIT` (deleted if it never
    /// comes).
    pub fn keep_written(&self, written: WrittenFiles) {
        let mut state = self.state.lock();
        match &mut state.branch {
            Some(branch) => branch.written.push(written),
            // No branch to commit them with: dropping them deletes them.
            None => drop(written),
        }
    }

    fn refuse_if_read_only(&self, what: &str) -> Result<()> {
        if self.read_only.load(Ordering::Acquire) {
            return Err(SchedulerError::transaction(
                format!("cannot {what} in a read-only transaction"),
                "25006",
            ));
        }
        Ok(())
    }

    /// Refuses a statement if the transaction failed (PostgreSQL's "current transaction is
    /// aborted").
    pub fn check_usable(&self) -> Result<()> {
        match &self.state.lock().failed {
            Some(why) => Err(SchedulerError::transaction(
                format!(
                    "current transaction is aborted, commands ignored until end of transaction \
                     block (it failed with: {why}); ROLLBACK to end it"
                ),
                "25P02",
            )),
            None => Ok(()),
        }
    }

    /// A statement in it failed: the transaction can only be rolled back now.
    pub fn fail(&self, why: &SchedulerError) {
        let mut state = self.state.lock();
        if state.failed.is_none() {
            state.failed = Some(why.to_string());
        }
    }

    /// The state its statements read: its snapshot plus its own writes.
    pub fn snapshot(&self) -> Result<Arc<CatalogSnapshot>> {
        let mut state = self.state.lock();
        self.seen(&mut state)
    }

    /// A session over [`Self::snapshot`]: the shared one while the transaction has not
    /// written and the catalog has not changed since it began.
    pub fn session(&self) -> Result<Arc<SharedSession>> {
        let mut state = self.state.lock();
        let seen = self.seen(&mut state)?;
        let view = state.view.as_mut().expect("seen() began the view");
        if let Some(session) = &view.session {
            return Ok(Arc::clone(session));
        }
        let shared = self.cluster.sessions.current(&self.cluster)?;
        let session = if Arc::ptr_eq(shared.snapshot(), &seen) {
            shared
        } else {
            SharedSession::over(&self.cluster, seen)?
        };
        view.session = Some(Arc::clone(&session));
        Ok(session)
    }

    fn seen(&self, state: &mut State) -> Result<Arc<CatalogSnapshot>> {
        let view = match &mut state.view {
            Some(view) => view,
            empty => {
                // Listed before the snapshot is taken: a commit after this point waits for
                // the transaction before deleting what it took out.
                let listed = self.cluster.stats.activity().start(
                    0,
                    &self.role,
                    "(transaction)",
                    chrono_now_ms(),
                    Instant::now(),
                );
                listed.set_state(ActivityState::IdleInTransaction);
                empty.insert(View {
                    base: self.cluster.catalog.snapshot(),
                    _listed: listed,
                    seen: None,
                    seen_over: None,
                    session: None,
                })
            }
        };
        let branched = state.branch.as_ref().map(DdlBranch::snapshot);
        let fresh = match (&view.seen_over, &branched) {
            (None, None) => true,
            (Some(over), Some(now)) => Arc::ptr_eq(over, now),
            _ => false,
        };
        if let Some(seen) = view.seen.as_ref().filter(|_| fresh) {
            return Ok(Arc::clone(seen));
        }
        let base = match &branched {
            Some(branched) => {
                // DDL ran: writes to tables it dropped are gone, renamed ones follow.
                fit_log_to(&mut state.log, branched);
                Arc::clone(branched)
            }
            None => Arc::clone(&view.base),
        };
        let seen = if state.log.is_empty() {
            base
        } else {
            let changes: Vec<FileChange> = state.log.iter().map(|l| l.change.clone()).collect();
            Arc::new(base.with_file_changes(&changes))
        };
        view.seen = Some(Arc::clone(&seen));
        view.seen_over = branched;
        view.session = None;
        Ok(seen)
    }

    /// Records a statement's write to `table` instead of committing it: the files it took
    /// out (committed, or written earlier in the transaction) and the files it wrote.
    pub async fn record(
        &self,
        cluster: &Arc<Cluster>,
        table: &str,
        removed: Vec<(PlacementId, GroupId, String)>,
        written: WrittenFiles,
    ) -> Result<()> {
        self.refuse_if_read_only(&format!("change table \"{table}\""))?;
        let change = FileChange {
            table: table.to_string(),
            written: written.schema.as_ref().clone(),
            removed,
            added: written.for_commit(),
        };
        // Keys are checked against the transaction's view now, and at COMMIT against what
        // others committed meanwhile. Dropping `written` deletes its files.
        let view = self.snapshot()?;
        crate::write::unique_keys::check_change(cluster, &view, &change).await?;
        let mut state = self.state.lock();
        state.log.push(Logged { change, written });
        if let Some(view) = &mut state.view {
            view.seen = None;
            view.session = None;
        }
        Ok(())
    }

    /// Every file `table` has in the transaction's view, as a `TRUNCATE` takes them out.
    pub fn files_of(&self, table: &str) -> Result<Vec<(PlacementId, GroupId, String)>> {
        let seen = self.snapshot()?;
        let Some(meta) = seen.table(table) else {
            return Ok(Vec::new());
        };
        Ok(meta
            .shards
            .iter()
            .flat_map(|s| s.placements.iter())
            .flat_map(|p| (p.files.iter()).map(|f| (p.placement_id, p.group_id, f.path.clone())))
            .collect())
    }

    /// `SAVEPOINT name`.
    pub fn savepoint(&self, name: &str) -> Result<()> {
        let mut state = self.state.lock();
        let at = state.log.len();
        let mark = match &state.branch {
            Some(branch) => branch.mark()?,
            None => BranchMark::Unbranched,
        };
        state.savepoints.push((name.to_string(), at, mark));
        Ok(())
    }

    /// `ROLLBACK TO SAVEPOINT name`: the writes since are dropped (their files deleted), the
    /// savepoint stays, and a failed transaction is usable again.
    pub fn rollback_to(&self, name: &str) -> Result<()> {
        let dropped = {
            let mut state = self.state.lock();
            let Some(position) = state.savepoints.iter().rposition(|(n, ..)| n == name) else {
                return Err(no_savepoint(name));
            };
            let at = state.savepoints[position].1;
            state.savepoints.truncate(position + 1);
            let State {
                savepoints, branch, ..
            } = &mut *state;
            match (&savepoints[position].2, branch.as_mut()) {
                (BranchMark::Unbranched, _) => *branch = None,
                (
                    BranchMark::At {
                        checkpoint,
                        written,
                    },
                    Some(branch),
                ) => {
                    branch.restore(checkpoint, *written)?;
                }
                (BranchMark::At { .. }, None) => {}
            }
            state.failed = None;
            if let Some(view) = &mut state.view {
                view.seen = None;
                view.session = None;
            }
            state.log.split_off(at)
        };
        drop(dropped);
        Ok(())
    }

    /// `RELEASE SAVEPOINT name`: forgets it and the savepoints after it.
    pub fn release(&self, name: &str) -> Result<()> {
        let mut state = self.state.lock();
        let Some(position) = state.savepoints.iter().rposition(|(n, ..)| n == name) else {
            return Err(no_savepoint(name));
        };
        state.savepoints.truncate(position);
        Ok(())
    }

    /// `COMMIT`: every write of the transaction becomes visible at once, or none does (a
    /// failed transaction is rolled back). Files taken out are deleted once no older
    /// statement reads them.
    pub async fn commit(&self) -> Result<()> {
        let (log, branch, failed) = {
            let mut state = self.state.lock();
            let log = std::mem::take(&mut state.log);
            state.savepoints.clear();
            state.view = None;
            (log, state.branch.take(), state.failed.take())
        };
        if let Some(why) = failed {
            // Dropping the log and the branch deletes their files.
            drop((log, branch));
            return Err(SchedulerError::transaction(
                format!("the transaction was rolled back: it had failed with: {why}"),
                "25P02",
            ));
        }
        if log.is_empty() && branch.is_none() {
            return Ok(());
        }
        let net = NetChange::of(&log);
        let cluster = &self.cluster;
        let _protected: Vec<_> = (net.changes.iter())
            .flat_map(|c| c.removed.iter())
            .map(|(_, group, path)| cluster.orphans.in_flight().begin(*group, path))
            .collect();
        // The log is dropped with the files it owes if a key is violated.
        let _key_locks =
            crate::write::unique_keys::lock_and_check_all(cluster, &net.changes).await?;
        let _committing = cluster.retirement.committing();
        let waiting_since = Instant::now();
        let old = loop {
            let committed = match &branch {
                Some(branch) => (cluster.catalog).commit_branch(&branch.branch, &net.changes),
                None => cluster.catalog.commit_file_changes(&net.changes),
            };
            match committed {
                Err(CatalogError::Conflict {
                    change: ConcurrentChange::BeingMoved,
                    ..
                }) if waiting_since.elapsed() < MOVE_WAIT => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // The log is dropped with the files it owes.
                Err(e @ CatalogError::Conflict { .. }) => {
                    return Err(SchedulerError::SerializationFailure {
                        message: format!(
                            "could not serialize access due to concurrent update ({e}); the \
                             transaction was rolled back: retry it"
                        ),
                    });
                }
                Err(e) => return Err(e.into()),
                Ok(old) => break old,
            }
        };
        crate::limits::commit_point::reached();
        if let Some(branch) = branch {
            branch.committed(&cluster.catalog.snapshot(), &old);
        }
        let mut garbage = old;
        for logged in log {
            let files = logged.written.for_commit();
            logged.written.committed();
            let dead = files
                .into_iter()
                .filter(|(p, _, f)| net.overwritten(*p, &f.path));
            garbage.extend(dead.map(|(_, group, file)| (group, file)));
        }
        cluster.retire_files(garbage);
        Ok(())
    }

    /// `ROLLBACK`: drops every write (their files are deleted).
    pub fn rollback(&self) {
        let mut state = self.state.lock();
        let log = std::mem::take(&mut state.log);
        *state = State::default();
        drop(state);
        drop(log);
    }
}

/// Fits the log to the DDL that ran since it was written (`now` is the branch's state): a
/// write to a table that was dropped is dropped with it (its files deleted); a write to a
/// table that was renamed names it by its new name.
fn fit_log_to(log: &mut Vec<Logged>, now: &CatalogSnapshot) {
    let owners: std::collections::HashMap<PlacementId, &str> = (now.tables.values())
        .flat_map(|t| t.shards.iter().map(move |s| (t, s)))
        .flat_map(|(t, s)| {
            s.placements
                .iter()
                .map(move |p| (p.placement_id, t.name.as_str()))
        })
        .collect();
    log.retain_mut(|logged| {
        let change = &mut logged.change;
        let placements =
            (change.added.iter().map(|(p, ..)| *p)).chain(change.removed.iter().map(|(p, ..)| *p));
        let mut placements = placements.peekable();
        if placements.peek().is_none() {
            return true;
        }
        match placements.find_map(|p| owners.get(&p)) {
            Some(owner) => {
                if change.table != *owner {
                    change.table = owner.to_string();
                }
                true
            }
            None => false,
        }
    });
}

/// What a transaction's writes amount to, per table: the committed files taken out and the
/// new files kept (a file written and then rewritten or truncated in the same transaction
/// is neither).
struct NetChange {
    changes: Vec<FileChange>,
    /// New files a later statement of the transaction took out again.
    overwritten: HashSet<(PlacementId, String)>,
}

impl NetChange {
    fn of(log: &[Logged]) -> Self {
        let added: HashSet<(PlacementId, &str)> = (log.iter())
            .flat_map(|l| l.change.added.iter())
            .map(|(p, _, f)| (*p, f.path.as_str()))
            .collect();
        let removed: HashSet<(PlacementId, &str)> = (log.iter())
            .flat_map(|l| l.change.removed.iter())
            .map(|(p, _, path)| (*p, path.as_str()))
            .collect();
        let mut changes: Vec<FileChange> = Vec::new();
        for logged in log {
            let change = &logged.change;
            let position = match changes.iter().position(|c| c.table == change.table) {
                Some(position) => position,
                None => {
                    changes.push(FileChange {
                        table: change.table.clone(),
                        written: change.written.clone(),
                        removed: Vec::new(),
                        added: Vec::new(),
                    });
                    changes.len() - 1
                }
            };
            let net = &mut changes[position];
            net.written = change.written.clone();
            let committed = (change.removed.iter())
                .filter(|(p, _, path)| !added.contains(&(*p, path.as_str())));
            net.removed.extend(committed.cloned());
            let kept =
                (change.added.iter()).filter(|(p, _, f)| !removed.contains(&(*p, f.path.as_str())));
            net.added.extend(kept.cloned());
        }
        let overwritten = added
            .intersection(&removed)
            .map(|(p, path)| (*p, path.to_string()))
            .collect();
        Self {
            changes,
            overwritten,
        }
    }

    fn overwritten(&self, placement: PlacementId, path: &str) -> bool {
        self.overwritten.contains(&(placement, path.to_string()))
    }
}

fn no_savepoint(name: &str) -> SchedulerError {
    SchedulerError::transaction(format!("savepoint \"{name}\" does not exist"), "3B001")
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Schema;
    use shardfusion_catalog::FileMeta;

    /// The kept files of a transaction's writes, for tests of the net change.
    fn net_of(changes: Vec<FileChange>) -> Vec<FileChange> {
        let log: Vec<Logged> = changes
            .into_iter()
            .map(|change| Logged {
                written: WrittenFiles::empty(Arc::new(change.written.clone())),
                change,
            })
            .collect();
        NetChange::of(&log).changes
    }

    fn file(path: &str) -> FileMeta {
        FileMeta {
            path: path.into(),
            row_count: 1,
            byte_size: 1,
            stats: None,
        }
    }

    fn change(table: &str, removed: &[&str], added: &[&str]) -> FileChange {
        let (p, g) = (PlacementId(1), GroupId(1));
        FileChange {
            table: table.into(),
            written: Schema::empty(),
            removed: removed.iter().map(|r| (p, g, r.to_string())).collect(),
            added: added.iter().map(|a| (p, g, file(a))).collect(),
        }
    }

    /// INSERT then UPDATE of the inserted rows, then an UPDATE of committed rows: the
    /// catalog gets only the last versions, and takes out only committed files.
    #[test]
    fn files_written_and_rewritten_in_one_transaction_never_reach_the_catalog() {
        let net = net_of(vec![
            change("t", &[], &["inserted"]),
            change("u", &[], &["other"]),
            change("t", &["inserted", "committed"], &["updated", "updated2"]),
            change("t", &["updated2"], &[]),
        ]);
        assert_eq!(net.len(), 2);
        let t = &net[0];
        let removed: Vec<_> = t.removed.iter().map(|(_, _, p)| p.as_str()).collect();
        let added: Vec<_> = t.added.iter().map(|(_, _, f)| f.path.as_str()).collect();
        assert_eq!(removed, ["committed"]);
        assert_eq!(added, ["updated"]);
        assert_eq!(net[1].added.len(), 1);
    }
}
