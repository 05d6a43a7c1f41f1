//! [`TransactionBlock`]: which transaction each statement of a text runs in, and the
//! transaction-control statements (`BEGIN`, `COMMIT`, `ROLLBACK`, savepoints).
//!
//! As in PostgreSQL:
//! - a session's explicit transaction runs from `BEGIN` (or `START TRANSACTION`) to `COMMIT`
//!   (`END`) or `ROLLBACK`, across calls; a statement that fails in it leaves it aborted, and
//!   every statement but `ROLLBACK` (or `ROLLBACK TO SAVEPOINT`) is refused until then
//!   (`COMMIT` of an aborted transaction rolls it back);
//! - outside one, a text of several statements runs as one implicit transaction: its writes
//!   commit together at its end, and an error in any statement discards them all. A `BEGIN`
//!   in the text makes the statements before it part of the explicit transaction;
//! - a single statement outside a transaction commits on its own.
//!
//! Queries, DML (`INSERT`, `UPDATE`, `DELETE`, `COPY ... FROM`, `TRUNCATE`) and table DDL
//! (`CREATE`/`DROP`/`ALTER TABLE`, `CREATE`/`DROP SEQUENCE`, `CREATE`/`DROP INDEX`, `create_distributed_table`,
//! `create_reference_table`, `undistribute_table`) take part in transactions, as in PostgreSQL and Citus. The other
//! statements that change the cluster (`ANALYZE`, roles and grants, node and shard-placement
//! functions, re-sharding) commit on their own: inside an explicit transaction they are
//! refused (SQLSTATE 25001); in an implicit one, after statements that wrote, too (the text
//! would not be all or nothing).
//!
//! A session's explicit transaction is kept in its [`ClientSession`] between calls. A text run
//! outside any client session cannot leave a transaction open: it is rolled back, with an
//! error.

use std::sync::Arc;
use std::time::Duration;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    ObjectType, Set, Statement, TransactionAccessMode, TransactionIsolationLevel, TransactionMode,
};

use crate::cluster::shared_state::Cluster;
use crate::coordinator::StatementOutput;
use crate::error::{Result, SchedulerError};
use crate::session::client_sessions::ClientSession;
use crate::session::session_settings::SessionSettings;
use crate::session::statement_call::StatementCall;
use crate::session::transaction::{Begun, Transaction};
use crate::statements::functions;

/// The transaction state of one statement text as it runs.
pub struct TransactionBlock {
    cluster: Arc<Cluster>,
    role: String,
    session: Option<Arc<ClientSession>>,
    current: Option<Arc<Transaction>>,
    /// Whether statements outside an explicit transaction run in an implicit one (the text
    /// holds several statements).
    implicit: bool,
    /// How long an explicit transaction left open may stay idle.
    pub idle_limit: Option<Duration>,
}

impl TransactionBlock {
    /// The block of a text of `statements` statements run by `call`: in its session's open
    /// transaction, if any.
    pub fn start(
        cluster: &Arc<Cluster>,
        call: &StatementCall,
        statements: usize,
        idle_limit: Option<Duration>,
    ) -> Self {
        let current = call.session.as_ref().and_then(|s| s.transaction());
        if let Some(transaction) = &current {
            transaction.touch();
        }
        Self {
            cluster: Arc::clone(cluster),
            role: call.principal.name().to_string(),
            session: call.session.clone(),
            current,
            implicit: statements > 1,
            idle_limit,
        }
    }

    /// Refuses any statement in an aborted transaction (transaction control aside).
    pub fn check_usable(&self) -> Result<()> {
        match &self.current {
            Some(transaction) => transaction.check_usable(),
            None => Ok(()),
        }
    }

    /// The transaction `statement` runs in (none: it commits on its own). A statement that
    /// does not take part in transactions is refused in an explicit one, and in an implicit
    /// one that wrote; otherwise it runs on its own.
    pub async fn for_statement(
        &mut self,
        statement: &DFStatement,
    ) -> Result<Option<Arc<Transaction>>> {
        self.check_usable()?;
        if let Some(what) = commits_on_its_own(statement)? {
            match self.current.take() {
                Some(transaction) if transaction.is_explicit() => {
                    let refused = SchedulerError::transaction(
                        format!(
                            "{what} cannot run inside a transaction block: DDL and the Citus \
                             functions that change the cluster commit on their own; run it \
                             before BEGIN or after COMMIT"
                        ),
                        "25001",
                    );
                    transaction.fail(&refused);
                    self.current = Some(transaction);
                    return Err(refused);
                }
                // Writes before it in the text would have to commit without the statements
                // after it: the text would not be all or nothing. Refused, as PostgreSQL
                // refuses such statements in a multi-statement text.
                Some(implicit) if implicit.has_writes() => {
                    let refused = SchedulerError::transaction(
                        format!(
                            "{what} cannot run in a statement text after statements that \
                             write: it commits on its own, and the text would not be all or \
                             nothing; send it in a text of its own"
                        ),
                        "25001",
                    );
                    implicit.rollback();
                    return Err(refused);
                }
                Some(implicit) => implicit.commit().await?,
                None => {}
            }
            return Ok(None);
        }
        if self.current.is_none() && self.implicit {
            self.current = Some(Transaction::new(
                &self.cluster,
                &self.role,
                Begun::Implicitly,
            ));
        }
        Ok(self.current.clone())
    }

    /// A statement failed: an explicit transaction is aborted (until `ROLLBACK`), an implicit
    /// one discarded.
    pub fn failed(&mut self, error: &SchedulerError) {
        match self.current.take() {
            Some(transaction) if transaction.is_explicit() => {
                transaction.fail(error);
                self.current = Some(transaction);
            }
            Some(implicit) => implicit.rollback(),
            None => {}
        }
        self.keep_in_session();
        self.leave_idle();
    }

    /// Runs a transaction-control statement; `None` if `statement` is not one. `settings` are
    /// the text's settings now: `BEGIN` remembers them, and a `ROLLBACK` hands them back in
    /// [`Controlled::restore`] (a `SET` in a rolled-back transaction is undone). A failed one
    /// aborts the transaction, as any failed statement does.
    pub async fn control(
        &mut self,
        statement: &DFStatement,
        settings: &SessionSettings,
    ) -> Result<Option<Controlled>> {
        let DFStatement::Statement(statement) = statement else {
            return Ok(None);
        };
        if !is_control(statement) {
            return Ok(None);
        }
        match self.run_control(statement, settings).await {
            Ok(restore) => {
                self.keep_in_session();
                Ok(Some(Controlled {
                    output: StatementOutput::empty(),
                    restore,
                }))
            }
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        }
    }

    async fn run_control(
        &mut self,
        statement: &Statement,
        settings: &SessionSettings,
    ) -> Result<Option<SessionSettings>> {
        match statement {
            Statement::StartTransaction { modes, .. } => {
                let read_only = read_only(modes)?;
                self.check_usable()?;
                // Already in an explicit one: PostgreSQL warns and goes on.
                let transaction = match self.current.take() {
                    Some(transaction) => transaction,
                    None => Transaction::new(&self.cluster, &self.role, Begun::Explicitly),
                };
                if !transaction.is_explicit() {
                    transaction.make_explicit();
                }
                transaction.remember_settings(*settings);
                if let Some(read_only) = read_only {
                    transaction.set_read_only(read_only);
                }
                self.current = Some(transaction);
            }
            Statement::Set(Set::SetTransaction {
                modes,
                session: false,
                ..
            }) => {
                let read_only = read_only(modes)?;
                let transaction = self.in_block("SET TRANSACTION")?;
                transaction.check_usable()?;
                if let Some(read_only) = read_only {
                    transaction.set_read_only(read_only);
                }
            }
            Statement::Set(Set::SetTransaction { .. }) => {
                return Err(SchedulerError::unsupported(
                    "SET SESSION CHARACTERISTICS AS TRANSACTION",
                ));
            }
            Statement::Commit { chain: true, .. } | Statement::Rollback { chain: true, .. } => {
                return Err(SchedulerError::unsupported("AND CHAIN"));
            }
            Statement::Commit { .. } => {
                // Without a transaction, PostgreSQL warns and succeeds.
                if let Some(transaction) = self.current.take() {
                    let restore = transaction.remembered_settings();
                    let committed = transaction.commit().await;
                    self.keep_in_session();
                    if committed.is_err()
                        && let (Some(session), Some(restore)) = (&self.session, restore)
                    {
                        // Rolled back instead: its SETs are undone in the session (the
                        // failed text writes no settings of its own).
                        session.update(|own| {
                            *own = restore;
                            Ok(())
                        })?;
                    }
                    committed?;
                }
            }
            Statement::Rollback {
                savepoint: None, ..
            } => {
                if let Some(transaction) = self.current.take() {
                    let restore = transaction.remembered_settings();
                    transaction.rollback();
                    return Ok(restore);
                }
            }
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => self
                .in_block("ROLLBACK TO SAVEPOINT")?
                .rollback_to(&name.value)?,
            Statement::Savepoint { name } => {
                let transaction = self.in_block("SAVEPOINT")?;
                transaction.check_usable()?;
                transaction.savepoint(&name.value)?;
            }
            Statement::ReleaseSavepoint { name } => {
                let transaction = self.in_block("RELEASE SAVEPOINT")?;
                transaction.check_usable()?;
                transaction.release(&name.value)?;
            }
            _ => {}
        }
        Ok(None)
    }

    /// The text ran to its end: an implicit transaction commits; an explicit one stays open
    /// in the session.
    pub async fn finish(mut self) -> Result<()> {
        match self.current.take() {
            Some(transaction) if transaction.is_explicit() => {
                if self.session.is_some() {
                    self.current = Some(transaction);
                    self.keep_in_session();
                    self.leave_idle();
                    return Ok(());
                }
                transaction.rollback();
                Err(SchedulerError::transaction(
                    "the transaction was rolled back: a statement text run outside a client \
                     session must end the transaction it begins (COMMIT or ROLLBACK); to keep \
                     one open across calls, use a session (its cookie)",
                    "25000",
                ))
            }
            Some(implicit) => {
                let committed = implicit.commit().await;
                self.keep_in_session();
                committed
            }
            None => {
                self.keep_in_session();
                Ok(())
            }
        }
    }

    /// Whether the text runs in an implicit transaction that wrote.
    pub fn implicit_writes(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|t| !t.is_explicit() && t.has_writes())
    }

    /// The explicit transaction a savepoint statement needs.
    fn in_block(&self, what: &str) -> Result<&Arc<Transaction>> {
        self.current
            .as_ref()
            .filter(|t| t.is_explicit())
            .ok_or_else(|| {
                SchedulerError::transaction(
                    format!("{what} can only be used in transaction blocks"),
                    "25P01",
                )
            })
    }

    /// The text ended with an explicit transaction open: it is rolled back if it stays idle
    /// too long.
    fn leave_idle(&self) {
        if let Some(transaction) = self.current.as_ref().filter(|t| t.is_explicit()) {
            transaction.expire_when_idle(self.idle_limit);
        }
    }

    /// Records the open explicit transaction (or none) in the session.
    fn keep_in_session(&self) {
        if let Some(session) = &self.session {
            let open = self.current.as_ref().filter(|t| t.is_explicit());
            session.set_transaction(open.cloned());
        }
    }
}

/// `READ ONLY` / `READ WRITE` among `modes` (the last one counts); isolation levels are
/// checked: transactions run under snapshot isolation, which is PostgreSQL's `REPEATABLE
/// READ` (and stronger than `READ COMMITTED`, which is accepted as PostgreSQL upgrades `READ
/// UNCOMMITTED`); `SERIALIZABLE` is refused rather than silently weakened.
fn read_only(modes: &[TransactionMode]) -> Result<Option<bool>> {
    let mut read_only = None;
    for mode in modes {
        match mode {
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => read_only = Some(true),
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => {
                read_only = Some(false)
            }
            TransactionMode::IsolationLevel(
                TransactionIsolationLevel::Serializable | TransactionIsolationLevel::Snapshot,
            ) => {
                return Err(SchedulerError::unsupported(
                    "ISOLATION LEVEL SERIALIZABLE (transactions run under snapshot isolation: \
                     use REPEATABLE READ)",
                ));
            }
            TransactionMode::IsolationLevel(_) => {}
        }
    }
    Ok(read_only)
}

/// The outcome of a transaction-control statement.
pub struct Controlled {
    pub output: StatementOutput,
    /// The settings to go back to: those in force at `BEGIN`, after a `ROLLBACK`.
    pub restore: Option<SessionSettings>,
}

fn is_control(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Set(Set::SetTransaction { .. })
    )
}

/// The Citus functions that take part in transactions (they change tables, which a
/// transaction's catalog branch holds).
const TRANSACTIONAL_FUNCTIONS: &[&str] = &[
    "create_distributed_table",
    "create_reference_table",
    "undistribute_table",
];

/// What a statement that commits on its own is called in an error; `None` for a statement
/// that takes part in transactions (queries, DML, and anything else, which fails as usual
/// if unsupported).
fn commits_on_its_own(statement: &DFStatement) -> Result<Option<String>> {
    let DFStatement::Statement(statement) = statement else {
        return Ok(match statement {
            DFStatement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE".into()),
            _ => None,
        });
    };
    Ok(match statement.as_ref() {
        Statement::Query(query) => match functions::function_call(query)? {
            Some(call)
                if call.function.superuser_only
                    && !TRANSACTIONAL_FUNCTIONS.contains(&call.name.as_str()) =>
            {
                Some(format!("{}()", call.name))
            }
            _ => None,
        },
        // Table DDL runs in the transaction's catalog branch.
        Statement::CreateTable(_)
        | Statement::AlterTable(_)
        | Statement::CreateSequence { .. }
        | Statement::CreateIndex(_)
        | Statement::CreateView(_) => None,
        Statement::Drop {
            object_type:
                ObjectType::Table | ObjectType::Sequence | ObjectType::Index | ObjectType::View,
            ..
        } => None,
        ddl @ (Statement::Drop { .. }
        | Statement::CreateSchema { .. }
        | Statement::Analyze(_)
        | Statement::CreateRole(_)
        | Statement::AlterRole { .. }
        | Statement::Grant(_)
        | Statement::Revoke(_)) => Some(statement_name(ddl)),
        _ => None,
    })
}

/// The statement's leading words, as an error names it (`CREATE TABLE`, `DROP TABLE`, ...).
fn statement_name(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    let keywords = words
        .iter()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .copied()
        .collect::<Vec<_>>();
    if keywords.is_empty() {
        words
            .first()
            .copied()
            .unwrap_or("the statement")
            .to_string()
    } else {
        keywords.join(" ")
    }
}

/// Runs `work` (one statement made of several writes: an upsert, a column change) in the
/// running statement's transaction, or in one of its own for `role`, committed if `work`
/// succeeds and rolled back otherwise, so that its writes commit together.
pub async fn all_or_nothing<T>(
    cluster: &Arc<Cluster>,
    role: &str,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    if crate::session::transaction::current().is_some() {
        return work.await;
    }
    let own = Transaction::new(cluster, role, Begun::Implicitly);
    match crate::session::transaction::within(Some(Arc::clone(&own)), work).await {
        Ok(output) => {
            own.commit().await?;
            Ok(output)
        }
        Err(e) => {
            own.rollback();
            Err(e)
        }
    }
}
