//! [`Coordinator`]: runs SQL statements against the cluster.
//!
//! A statement is parsed in the PostgreSQL dialect and dispatched:
//! - `COPY t FROM '/path'` → [`crate::statements::copy`]; `COPY (query) TO '/path'` → planned by DataFusion
//!   in a session with `file://`, once [`crate::statements::file_access`] granted the path;
//! - `CREATE TABLE`, `DROP TABLE`, `TRUNCATE`, `ALTER TABLE ... ADD COLUMN` → [`crate::statements::ddl`];
//! - `ANALYZE [table]` → [`crate::statements::analyze`];
//! - `SELECT create_distributed_table(...)` and the other Citus functions → [`crate::statements::functions`];
//! - `INSERT` → planned by DataFusion, written through the table's sink, run at once;
//! - everything else → planned by DataFusion (with the distributed planner) and returned as a
//!   plan to be streamed when the client fetches.
//!
//! - `CREATE ROLE`/`USER`, `ALTER`/`DROP ROLE`, `GRANT`, `REVOKE` → [`crate::statements::roles`].
//!
//! Statements with side effects run to completion before the call returns, whichever Flight
//! SQL path (query or update) they arrived on.
//!
//! Every statement runs as a [`Principal`], and is checked against its privileges in the
//! catalog snapshot the statement starts with: DDL, server files and cluster changes need a
//! superuser; planned statements need privileges on the tables they read and write
//! ([`crate::auth::plan_privileges`]).

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{CopyTarget, ObjectType, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use shardfusion_catalog::Node;
use shardfusion_common::yielding_joins::yielding_joins;

use crate::auth::{Access, Principal};
use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};
use crate::limits::statement_control::StatementControl;
use crate::monitoring::statement_activity::ActivityState;
use crate::monitoring::statement_stats::StatementTracker;
use crate::planner::statement_counters;
use crate::session::session_settings::SessionSettings;
use crate::session::statement_call::StatementCall;
use crate::session::statement_context::{file_session_for, session_for};
use crate::session::transaction::{Transaction, statement_session, statement_snapshot};
use crate::statements::sql_rewrite::rewrite_statement;
use crate::statements::table_references::check_tables_exist;
use crate::statements::{
    analyze, copy, ddl, expression_depth, functions, indexes, insert_returning, insert_rewrite,
    on_conflict, query, question_placeholders, role_syntax, roles, runtime, sequences, views,
};
use futures::StreamExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What a statement produced.
pub enum StatementOutput {
    /// A query, planned but not started: stream it with [`StatementOutput::into_stream`].
    Query {
        plan: Arc<dyn ExecutionPlan>,
        task_ctx: Arc<TaskContext>,
        /// Records the statement once its stream is done.
        tracker: Option<StatementTracker>,
        /// Its deadline, cancellation, slot and memory while it streams.
        /// (Boxed: it is large, and most outputs are rows.)
        control: Option<Box<StatementControl>>,
        /// The explicit transaction it runs in, which an error while it streams aborts.
        transaction: Option<Arc<Transaction>>,
    },
    /// A finished statement's result rows.
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
}

impl std::fmt::Debug for StatementOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Query { plan, .. } => write!(f, "Query({})", plan.name()),
            Self::Rows { batches, .. } => write!(f, "Rows({} batches)", batches.len()),
        }
    }
}

impl StatementOutput {
    /// A result with no columns and no rows (DDL).
    pub fn empty() -> Self {
        Self::Rows {
            schema: Arc::new(Schema::empty()),
            batches: vec![],
        }
    }

    /// DataFusion's DML result: one `count` row.
    pub fn count(rows: u64) -> Self {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "count",
            DataType::UInt64,
            false,
        )]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(UInt64Array::from(vec![rows]))],
        )
        .expect("count batch matches its schema");
        Self::Rows {
            schema,
            batches: vec![batch],
        }
    }

    pub fn schema(&self) -> SchemaRef {
        match self {
            Self::Query { plan, .. } => plan.schema(),
            Self::Rows { schema, .. } => Arc::clone(schema),
        }
    }

    /// What cancels the statement, for a query not yet streamed or streaming.
    pub fn cancel_token(&self) -> Option<tokio_util::sync::CancellationToken> {
        match self {
            Self::Query {
                control: Some(control),
                ..
            } => Some(control.cancel_token().clone()),
            _ => None,
        }
    }

    /// Starts (or replays) the result. A query waits for a statement slot when its first
    /// batch is asked for, and streams within its deadline.
    pub fn into_stream(self) -> Result<SendableRecordBatchStream> {
        match self {
            Self::Query {
                plan,
                task_ctx,
                tracker,
                control,
                transaction,
            } => {
                let schema = plan.schema();
                // Joins run on the coordinator yield too, so that a stopped query stops.
                let plan = yielding_joins(plan)?;
                let stream = match control {
                    Some(control) => {
                        let task_ctx = control.task_context(task_ctx);
                        control.stream(Arc::clone(&schema), move || {
                            Ok(execute_stream(plan, task_ctx)?)
                        })
                    }
                    None => execute_stream(plan, task_ctx)?,
                };
                if let Some(tracker) = &tracker {
                    tracker.set_state(ActivityState::Running);
                }
                let counted = TrackedStream {
                    inner: stream,
                    tracker,
                    transaction,
                };
                Ok(Box::pin(RecordBatchStreamAdapter::new(schema, counted)))
            }
            Self::Rows { schema, batches } => Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(batches.into_iter().map(Ok)),
            ))),
        }
    }

    /// Rows affected, for the Flight SQL update path: the `count` of DML, else 0.
    pub fn affected_rows(&self) -> i64 {
        if let Self::Rows { schema, batches } = self
            && schema.fields().len() == 1
            && schema.field(0).name() == "count"
        {
            return batches
                .iter()
                .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
                .flat_map(|a| a.values().iter().copied())
                .sum::<u64>() as i64;
        }
        0
    }
}

/// Counts the rows a query returns and records the statement as soon as its stream ends.
struct TrackedStream {
    inner: SendableRecordBatchStream,
    tracker: Option<StatementTracker>,
    transaction: Option<Arc<Transaction>>,
}

impl futures::Stream for TrackedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(batch))) => {
                if let Some(tracker) = &self.tracker {
                    tracker
                        .counters()
                        .rows_returned
                        .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                }
            }
            std::task::Poll::Ready(end) => {
                // End of stream, or an error: the statement is over. An error aborts the
                // transaction it ran in, as any failed statement does.
                if let (Some(Err(e)), Some(transaction)) = (end, &self.transaction) {
                    transaction.fail(&SchedulerError::invalid(e.to_string()));
                }
                self.tracker.take();
            }
            std::task::Poll::Pending => {}
        }
        polled
    }
}

/// What bounds a statement while it is planned and run: its control, and the settings in
/// force (the session's over the server's defaults).
type Bounds<'a> = (&'a StatementControl, &'a SessionSettings);

/// Runs statements against the cluster.
#[derive(Debug, Clone)]
pub struct Coordinator {
    cluster: Arc<Cluster>,
}

impl Coordinator {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        Self { cluster }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// A session of its own over the catalog state the running statement reads (its
    /// transaction's view, if it runs in one).
    pub fn session(&self) -> Result<SessionContext> {
        let snapshot = crate::session::transaction::statement_snapshot(&self.cluster)?;
        session_for(&self.cluster, snapshot)
    }

    /// Runs every statement in `sql` as the initial superuser ([`Principal::trusted`]): for
    /// the process's own code (an embedded cluster, the Python bindings). Clients' statements
    /// go through [`Self::execute_as`].
    pub async fn execute(&self, sql: &str) -> Result<StatementOutput> {
        self.execute_as(&self.cluster.auth.trusted(), sql).await
    }

    /// Runs every statement in `sql`, in order, as `principal`; returns the last one's
    /// output. Parsing, planning and statements with side effects run on [`runtime`]; a
    /// query's rows stream on the caller's runtime.
    pub async fn execute_as(&self, principal: &Principal, sql: &str) -> Result<StatementOutput> {
        self.execute_call(&StatementCall::new(principal.clone()), sql, Vec::new())
            .await
    }

    /// Runs the one statement in `sql` as `principal`, its placeholders `$1`, `$2`, ...
    /// bound to `params` in its plan (a prepared statement's parameters). Without `params`,
    /// as [`Self::execute_as`].
    pub async fn execute_with_params(
        &self,
        principal: &Principal,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<StatementOutput> {
        self.execute_call(&StatementCall::new(principal.clone()), sql, params)
            .await
    }

    /// Runs `work` (a statement the frontend runs itself: bulk ingest) as a statement of
    /// `call`: in a slot, within its session's timeout and the call's deadline.
    pub async fn run_bounded<T>(
        &self,
        call: &StatementCall,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let settings = call
            .session
            .as_ref()
            .map(|session| session.settings())
            .unwrap_or_default()
            .over(&self.cluster.default_settings());
        StatementControl::new(&settings, call.timeout, self.cluster.admission())
            .run(work)
            .await
    }

    /// Runs the statements of `sql` for `call`: as its principal, with its session's
    /// settings (which a `SET` in the text changes), each statement bounded by its own
    /// [`StatementControl`] (a slot, the statement timeout from its start, the call's
    /// deadline and cancellation, the memory limit). `params` as in
    /// [`Self::execute_with_params`].
    pub async fn execute_call(
        &self,
        call: &StatementCall,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<StatementOutput> {
        let this = self.clone();
        let sql = sql.to_string();
        let call = call.clone();
        runtime::run(async move { this.execute_here(&call, &sql, &params).await }).await
    }

    /// Runs one statement, whose text took `parse_time` to parse, recording it in
    /// `shardfusion_stat_statements`.
    pub(crate) async fn execute_parsed(
        &self,
        principal: &Principal,
        statement: DFStatement,
        parse_time: Duration,
        params: &[ScalarValue],
        bounds: Bounds<'_>,
    ) -> Result<StatementOutput> {
        if !params.is_empty() && !takes_parameters(&statement)? {
            return Err(SchedulerError::invalid(
                "only a query or an INSERT takes parameters ($1, $2, ...)",
            ));
        }
        let snapshot = statement_snapshot(&self.cluster)?;
        let access = principal.access(&snapshot)?;
        let (statement, tracker) = self.cluster.stats.track(principal.name(), statement);
        let counters = tracker.counters();
        counters
            .parse_us
            .fetch_add(parse_time.as_micros() as u64, Ordering::Relaxed);
        let planning = Instant::now();
        let mut output = self
            .dispatch(statement, &tracker, &access, params, bounds)
            .await?;
        counters
            .plan_us
            .fetch_add(planning.elapsed().as_micros() as u64, Ordering::Relaxed);
        match &mut output {
            StatementOutput::Query { tracker: slot, .. } => {
                // Planned; it runs when the client fetches the result (`into_stream`).
                tracker.set_state(ActivityState::Planned);
                *slot = Some(tracker);
            }
            StatementOutput::Rows { batches, .. } => {
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                tracker
                    .counters()
                    .rows_returned
                    .fetch_add(rows as u64, Ordering::Relaxed);
            }
        }
        Ok(output)
    }

    async fn dispatch(
        &self,
        mut statement: DFStatement,
        tracker: &StatementTracker,
        access: &Access<'_>,
        params: &[ScalarValue],
        bounds: Bounds<'_>,
    ) -> Result<StatementOutput> {
        let (control, settings) = bounds;
        if let DFStatement::CopyTo(copy_to) = &mut statement {
            access.require_superuser(SERVER_FILES)?;
            copy_to.target = copy::checked_copy_target(&self.cluster.file_access, &copy_to.target)?;
            let ctx = file_session_for(&self.cluster, statement_snapshot(&self.cluster)?)?;
            let state = ctx.state();
            let planning = query::plan_in(
                &state,
                None,
                ctx.task_ctx(),
                statement,
                access,
                &[],
                control,
            );
            return statement_counters::counting(Arc::clone(tracker.counters()), planning).await;
        }
        let snapshot = statement_snapshot(&self.cluster)?;
        let returning = insert_rewrite::take_returning(&mut statement, access, &snapshot)?;
        let upsert = insert_rewrite::rewrite_insert(&mut statement, &snapshot, returning.as_ref())?;
        if let Some(upsert) = upsert {
            let insert = async {
                match returning {
                    Some(returning) => {
                        let insert = self.plan(statement, tracker, access, params, control);
                        insert_returning::returning_rows(returning, insert).await
                    }
                    None => self.plan(statement, tracker, access, params, control).await,
                }
            };
            return on_conflict::upsert(self, access, control, params, upsert, insert).await;
        }
        if let Some(returning) = returning {
            let insert = self.plan(statement, tracker, access, params, control);
            return insert_returning::returning_rows(returning, insert).await;
        }
        let DFStatement::Statement(inner) = &statement else {
            return self.plan(statement, tracker, access, params, control).await;
        };
        match inner.as_ref() {
            Statement::Copy {
                to: true,
                target: CopyTarget::File { filename },
                ..
            } => {
                access.require_superuser(SERVER_FILES)?;
                // Not in DataFusion's COPY ... TO form (see `parse`): refuse it as COPY TO, but
                // only after the file check, so that a refused path says why.
                copy::checked_copy_target(&self.cluster.file_access, filename)?;
                Err(SchedulerError::unsupported(
                    "this form of COPY ... TO; write COPY (query) TO '/path/file.csv' \
                     STORED AS CSV [OPTIONS (...)], or fetch the rows with a client",
                ))
            }
            Statement::Copy {
                to: false,
                source,
                target,
                options,
                legacy_options,
                ..
            } => {
                access.require_superuser(SERVER_FILES)?;
                copy::copy_from(self, source, target, options, legacy_options).await
            }
            Statement::CreateTable(_) => {
                access.require_superuser("CREATE TABLE")?;
                ddl::create_table(self, statement).await
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                ..
            } => {
                access.require_superuser("DROP TABLE")?;
                ddl::drop_tables(self, names, *if_exists).await
            }
            Statement::Drop {
                object_type: ObjectType::Role | ObjectType::User,
                if_exists,
                names,
                ..
            } => roles::drop_roles(self, access, names, *if_exists),
            Statement::Drop {
                object_type: ObjectType::Sequence,
                if_exists,
                names,
                ..
            } => {
                access.require_superuser("DROP SEQUENCE")?;
                sequences::drop_sequences(self, names, *if_exists)
            }
            Statement::Drop {
                object_type: ObjectType::Index,
                if_exists,
                names,
                ..
            } => {
                access.require_superuser("DROP INDEX")?;
                indexes::drop_indexes(self, names, *if_exists)
            }
            Statement::Drop {
                object_type: ObjectType::View,
                if_exists,
                names,
                ..
            } => {
                access.require_superuser("DROP VIEW")?;
                views::drop_views(self, names, *if_exists)
            }
            Statement::Drop { object_type, .. } => {
                Err(SchedulerError::unsupported(format!("DROP {object_type}")))
            }
            Statement::CreateView(create) => {
                access.require_superuser("CREATE VIEW")?;
                views::create_view(self, create).await
            }
            Statement::CreateIndex(create) => {
                access.require_superuser("CREATE INDEX")?;
                indexes::create_index(self, create).await
            }
            Statement::CreateSequence { .. } => {
                access.require_superuser("CREATE SEQUENCE")?;
                sequences::create_sequence(self, inner)
            }
            Statement::Truncate(truncate) => ddl::truncate(self, access, truncate).await,
            Statement::AlterTable(alter) => {
                access.require_superuser("ALTER TABLE")?;
                ddl::alter_table(self, access.principal().name(), alter).await
            }
            Statement::Analyze(target) => {
                access.require_superuser("ANALYZE")?;
                analyze::analyze(self, target).await
            }
            Statement::CreateRole(create) => roles::create_role(self, access, create),
            Statement::AlterRole { name, operation } => {
                roles::alter_role(self, access, &name.value, operation)
            }
            Statement::Grant(grant) => roles::grant_or_revoke(
                self,
                access,
                &grant.privileges,
                grant.objects.as_ref(),
                &grant.grantees,
                true,
            ),
            Statement::Revoke(revoke) => roles::grant_or_revoke(
                self,
                access,
                &revoke.privileges,
                revoke.objects.as_ref(),
                &revoke.grantees,
                false,
            ),
            Statement::Query(query) => match functions::function_call(query)? {
                Some(mut call) => {
                    if call.function.superuser_only {
                        access.require_superuser(&call.name)?;
                    }
                    call.default_shard_count = settings.shard_count;
                    functions::run(self, call).await
                }
                None => self.plan(statement, tracker, access, params, control).await,
            },
            Statement::Update(update) => {
                crate::write::row_changes::update(self, access, control, params, update).await
            }
            Statement::Delete(delete) => {
                crate::write::row_changes::delete(self, access, control, params, delete).await
            }
            _ => self.plan(statement, tracker, access, params, control).await,
        }
    }

    /// Plans a statement with DataFusion in the shared session ([`query`]); DML runs at
    /// once, queries are returned unstarted.
    async fn plan(
        &self,
        statement: DFStatement,
        tracker: &StatementTracker,
        access: &Access<'_>,
        params: &[ScalarValue],
        control: &StatementControl,
    ) -> Result<StatementOutput> {
        let session = statement_session(&self.cluster)?;
        let counters = Arc::clone(tracker.counters());
        let planning = query::plan_statement(
            &session,
            statement,
            Arc::clone(&counters),
            access,
            params,
            control,
        );
        statement_counters::counting(counters, planning).await
    }

    /// What `sql` will return when `principal` runs it, and the parameters it takes, without
    /// running it or recording it: the columns of a single query, EXPLAIN or INSERT (its
    /// `count`), else none; and one field per placeholder (`$1`, `$2`, ...) typed as
    /// DataFusion infers it (`Null` where it cannot). A statement `principal` may not run is
    /// refused.
    pub async fn prepare_as(&self, principal: &Principal, sql: &str) -> Result<Prepared> {
        let this = self.clone();
        let sql = sql.to_string();
        let principal = principal.clone();
        // Planned in the transaction the call runs in, if any (its tables, its own writes).
        let open = crate::session::transaction::current();
        runtime::run(async move {
            crate::session::transaction::within(open, this.prepare_here(&principal, &sql)).await
        })
        .await
    }

    async fn prepare_here(&self, principal: &Principal, sql: &str) -> Result<Prepared> {
        let mut statements = parse(sql)?;
        // Queries and INSERT are planned (planning runs nothing); DDL, COPY and the Citus
        // functions have no columns to announce before they run.
        let plain_query = match statements.as_slice() {
            [statement] => takes_parameters(statement)?,
            _ => false,
        };
        let empty = || Arc::new(Schema::empty());
        let Some(statement) = statements.pop().filter(|_| plain_query) else {
            return Ok(Prepared {
                dataset: empty(),
                parameters: empty(),
            });
        };
        let snapshot = crate::session::transaction::statement_snapshot(&self.cluster)?;
        let access = principal.access(&snapshot)?;
        let mut statement = statement;
        // Its RETURNING columns are known once it ran.
        let returns_rows =
            insert_rewrite::take_returning(&mut statement, &access, &snapshot)?.is_some();
        // An upsert is described by its INSERT half.
        insert_rewrite::rewrite_insert(&mut statement, &snapshot, None)?;
        let session = crate::session::transaction::statement_session(&self.cluster)?;
        check_tables_exist(session.state(), &statement)?;
        if let DFStatement::Statement(inner) = &statement
            && let Statement::Update(_) | Statement::Delete(_) = inner.as_ref()
        {
            // Run by ShardFusion itself, not planned by DataFusion: a count, or its
            // RETURNING rows, known once it ran.
            let has_returning = match inner.as_ref() {
                Statement::Update(update) => update.returning.is_some(),
                Statement::Delete(delete) => delete.returning.is_some(),
                _ => false,
            };
            return Ok(Prepared {
                dataset: match has_returning {
                    true => empty(),
                    false => StatementOutput::count(0).schema(),
                },
                parameters: Arc::new(Schema::new(
                    crate::write::dml_parameters::parameters(session.state(), inner).await?,
                )),
            });
        }
        let logical = session.state().statement_to_plan(statement.clone()).await?;
        let mut placeholders: Vec<(usize, Field)> = Vec::new();
        for (name, field) in logical.get_parameter_fields()? {
            let position = name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    SchedulerError::invalid(format!(
                        "unsupported placeholder {name}: number them $1, $2, ..."
                    ))
                })?;
            let data_type = field.map_or(DataType::Null, |f| f.data_type().clone());
            placeholders.push((position, Field::new(name, data_type, true)));
        }
        if placeholders.is_empty() {
            // Planned to the end, so the announced columns are exactly those streamed.
            let planned = query::physical_plan(
                session.state(),
                Some(&session),
                session.task_ctx(),
                statement,
                &access,
                &[],
            )
            .await?;
            return Ok(Prepared {
                dataset: if returns_rows {
                    empty()
                } else {
                    planned.plan.schema()
                },
                parameters: empty(),
            });
        }
        placeholders.sort_by_key(|(position, _)| *position);
        let plan = crate::auth::plan_privileges::authorize_plan(&access, logical)?;
        Ok(Prepared {
            dataset: match returns_rows {
                true => empty(),
                false => Arc::new(plan.schema().as_arrow().clone()),
            },
            parameters: Arc::new(Schema::new(
                placeholders.into_iter().map(|(_, f)| f).collect::<Vec<_>>(),
            )),
        })
    }

    /// A worker announced itself (its `worker` process started); it is added once the host
    /// at `name:port` proved to be that worker (see [`crate::cluster::node_membership`]).
    pub async fn register_worker(&self, name: &str, port: u16, worker_uuid: &str) -> Result<Node> {
        let node = crate::cluster::node_membership::register_worker(
            &self.cluster,
            name,
            port,
            worker_uuid,
        )
        .await?;
        // Whatever deletions it is owed, and files it kept from before, are settled now.
        self.cluster.orphans.worker_registered(node.group_id);
        Ok(node)
    }
}

/// What a prepared statement returns and takes.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The columns it returns.
    pub dataset: SchemaRef,
    /// Its parameters, `$1`, `$2`, ... in order.
    pub parameters: SchemaRef,
}

/// Whether `statement` may take parameters: a query (not a Citus function call), an `INSERT`,
/// `UPDATE` or `DELETE`, or an `EXPLAIN` of one.
fn takes_parameters(statement: &DFStatement) -> Result<bool> {
    Ok(match statement {
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::Query(query) => functions::function_call(query)?.is_none(),
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => true,
            _ => false,
        },
        DFStatement::Explain(_) => true,
        _ => false,
    })
}

/// What reading or writing the coordinator host's files needs (PostgreSQL's
/// `pg_read_server_files` and `pg_write_server_files`).
const SERVER_FILES: &str = "COPY to or from a server file (clients load their own files \
                            with bulk ingest)";

/// Splits `sql` into statements, rewriting Postgres-only casts. Expressions are bounded in
/// depth first ([`expression_depth`]), so that no later stage can overflow a stack.
pub fn parse(sql: &str) -> Result<Vec<DFStatement>> {
    let bound = expression_depth::nesting_bound(sql);
    if bound > expression_depth::MAX_TEXT_NESTING {
        return Err(expression_depth::too_deep(format!(
            "the text nests up to {bound} operators deep"
        )));
    }
    expression_depth::on_stack_for(bound, || parse_bounded(sql))
}

fn parse_bounded(sql: &str) -> Result<Vec<DFStatement>> {
    let sql = &*question_placeholders::number_placeholders(sql);
    let sql = &*crate::statements::sql_rewrite::abort_as_rollback(sql);
    let dialect = PostgreSqlDialect {};
    let mut statements: Vec<DFStatement> = match role_syntax::parse_sql(&dialect, sql) {
        Ok(mut statements) => {
            for statement in &mut statements {
                expression_depth::bound_statement(statement)?;
            }
            statements
                .into_iter()
                .map(|s| match &s {
                    // DataFusion's own COPY ... TO syntax (STORED AS, OPTIONS).
                    Statement::Copy { to: true, .. } => {
                        DFParser::parse_sql_with_dialect(&s.to_string(), &dialect)
                            .ok()
                            .and_then(|mut v| v.pop_front())
                            .unwrap_or(DFStatement::Statement(Box::new(s)))
                    }
                    _ => DFStatement::Statement(Box::new(s)),
                })
                .collect()
        }
        Err(pg_error) => match DFParser::parse_sql_with_dialect(sql, &dialect) {
            Ok(statements) => {
                let mut statements: Vec<DFStatement> = statements.into_iter().collect();
                for statement in &mut statements {
                    bound_df_statement(statement)?;
                }
                statements
            }
            Err(_) => {
                return Err(SchedulerError::Syntax {
                    message: pg_error.to_string(),
                });
            }
        },
    };
    for statement in &mut statements {
        match statement {
            DFStatement::Statement(s) => rewrite_statement(s),
            DFStatement::Explain(explain) => {
                if let DFStatement::Statement(s) = explain.statement.as_mut() {
                    rewrite_statement(s);
                }
            }
            _ => {}
        }
    }
    Ok(statements)
}

/// [`expression_depth::bound_statement`] for a statement of DataFusion's own syntax.
fn bound_df_statement(statement: &mut DFStatement) -> Result<()> {
    match statement {
        DFStatement::Statement(s) => expression_depth::bound_statement(s),
        DFStatement::Explain(explain) => bound_df_statement(&mut explain.statement),
        DFStatement::CopyTo(copy_to) => match &mut copy_to.source {
            datafusion::sql::parser::CopyToSource::Query(query) => {
                expression_depth::bound_statement(query.as_mut())
            }
            datafusion::sql::parser::CopyToSource::Relation(_) => Ok(()),
        },
        _ => Ok(()),
    }
}
