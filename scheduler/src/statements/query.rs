//! Planning queries, `INSERT` and `COPY (query) TO`: DataFusion in the shared session, with
//! what makes repeated and routed statements cheap.
//!
//! 1. A query with a shape ([`StatementShape`]) starts from its shape's plan with its values
//!    filled in ([`crate::session::plan_cache`]), skipping SQL planning; it is optimized with
//!    its literals, as if planned from its text.
//! 2. Otherwise the statement is planned from its text; a statement calling `now()` or
//!    another stable function plans in a copy of the shared state marked with its start time
//!    ([`least_stable`]), since the optimizer folds those calls.
//! 3. Either way, a query pinned to one shard group is physically planned for one partition
//!    ([`router`]); `EXPLAIN` plans the same way, so it shows what runs.
//!
//! Every plan, cached or not, is checked against the principal's privileges before it is
//! optimized ([`authorize_plan`]).
//!
//! DML runs at once; queries are returned unstarted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{LogicalPlan, Volatility};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;

use crate::auth::Access;
use crate::auth::plan_privileges::authorize_plan;
use crate::coordinator::StatementOutput;
use crate::error::{Result, SchedulerError};
use crate::limits::statement_control::StatementControl;
use crate::monitoring::statement_stats::QueryCounters;
use crate::planner::function_volatility::least_stable;
use crate::planner::router;
use crate::session::sequence_functions;
use crate::session::session_cache::SharedSession;
use crate::session::statement_shape::StatementShape;
use crate::statements::table_references::check_tables_exist;
use crate::write::not_null;

/// Plans `statement` in `session`, counting in `counters` whether it came from a cached
/// shape (`generic_plan_calls`) or from its text (`custom_plan_calls`, queries only).
pub(crate) async fn plan_statement(
    session: &SharedSession,
    statement: DFStatement,
    counters: Arc<QueryCounters>,
    access: &Access<'_>,
    params: &[ScalarValue],
    control: &StatementControl,
) -> Result<StatementOutput> {
    let shape = match params {
        [] => StatementShape::of(&statement),
        // Bound parameters: planned with their values, as a custom plan.
        _ => None,
    };
    let Some(shape) = shape else {
        return plan_in(
            session.state(),
            Some(session),
            session.task_ctx(),
            statement,
            access,
            params,
            control,
        )
        .await;
    };
    if let Some(plan) = session
        .plan_cache()
        .logical_plan(session.state(), &shape)
        .await
    {
        let plan = authorize_plan(access, plan)?;
        // A cached plan that fails to optimize with these values is planned from its text.
        if let Ok(plan) = optimized_physical_plan(session.state(), Some(session), &plan).await {
            counters.generic_plans.fetch_add(1, Ordering::Relaxed);
            return Ok(StatementOutput::Query {
                plan,
                task_ctx: session.task_ctx(),
                tracker: None,
                control: None,
                transaction: None,
            });
        }
    }
    counters.custom_plans.fetch_add(1, Ordering::Relaxed);
    plan_in(
        session.state(),
        Some(session),
        session.task_ctx(),
        statement,
        access,
        &[],
        control,
    )
    .await
}

/// Plans `statement` in `state`; DML runs at once (with `task_ctx`, within `control`'s
/// memory limit), queries are returned unstarted.
pub(crate) async fn plan_in(
    state: &SessionState,
    shared: Option<&SharedSession>,
    task_ctx: Arc<TaskContext>,
    statement: DFStatement,
    access: &Access<'_>,
    params: &[ScalarValue],
    control: &StatementControl,
) -> Result<StatementOutput> {
    let planned = physical_plan(state, shared, task_ctx, statement, access, params).await?;
    if planned.is_dml {
        let schema = planned.plan.schema();
        let batches = collect(planned.plan, control.task_context(planned.task_ctx)).await?;
        return Ok(StatementOutput::Rows { schema, batches });
    }
    Ok(StatementOutput::Query {
        plan: planned.plan,
        task_ctx: planned.task_ctx,
        tracker: None,
        control: None,
        transaction: None,
    })
}

/// A statement planned down to its distributed physical plan.
pub(crate) struct PhysicalPlan {
    pub(crate) plan: Arc<dyn ExecutionPlan>,
    /// What the plan runs with.
    pub(crate) task_ctx: Arc<TaskContext>,
    /// Whether it changes data (INSERT, COPY ... TO), and so runs at once.
    pub(crate) is_dml: bool,
}

/// Plans `statement` in `state`, which it only reads: a statement that would change its
/// session (`SET`, `PREPARE`, ...) is planned in a copy of its own, and runs with that copy's
/// task context instead of `task_ctx`. A query (or the query an `EXPLAIN` shows) pinned to
/// one shard group is physically planned in `shared`'s router state ([`router`]), as a
/// cached shape would be, so `EXPLAIN` shows what runs. `access` must allow it. `params` are
/// the values of its placeholders `$1`, `$2`, ... (none if it has none).
pub(crate) async fn physical_plan(
    state: &SessionState,
    shared: Option<&SharedSession>,
    task_ctx: Arc<TaskContext>,
    statement: DFStatement,
    access: &Access<'_>,
    params: &[ScalarValue],
) -> Result<PhysicalPlan> {
    check_tables_exist(state, &statement)?;
    let plan = bind_parameters(state.statement_to_plan(statement).await?, params)?;
    // Sequence functions are volatile: a plan calling none (most) is not walked for them.
    let volatility = least_stable(&plan);
    let plan = if volatility == Volatility::Volatile {
        let bound = sequence_functions::bind_to_session(plan)?;
        sequence_functions::authorize(&bound, access)?;
        bound
    } else {
        plan
    };
    let plan = authorize_plan(access, plan)?;
    let plan = not_null::defer_not_null_checks(plan)?;
    if let LogicalPlan::Ddl(ddl) = &plan {
        return Err(SchedulerError::unsupported(ddl.name().to_string()));
    }
    if let LogicalPlan::Statement(_) = &plan {
        let ctx = SessionContext::new_with_state(state.clone());
        let frame = ctx.execute_logical_plan(plan).await?;
        return Ok(PhysicalPlan {
            plan: frame.create_physical_plan().await?,
            task_ctx: ctx.task_ctx(),
            is_dml: false,
        });
    }
    let is_dml = matches!(plan, LogicalPlan::Dml(_) | LogicalPlan::Copy(_));
    // `now()` and its kin are folded to the statement's start time, which a shared state
    // does not have: such a statement plans in a copy that does.
    let timed;
    let state = if volatility == Volatility::Immutable {
        state
    } else {
        let mut copy = state.clone();
        copy.mark_start_execution();
        timed = copy;
        &timed
    };
    Ok(PhysicalPlan {
        plan: optimized_physical_plan(state, shared, &plan).await?,
        task_ctx,
        is_dml,
    })
}

tokio::task_local! {
    /// Set while the parts of one statement run as statements of their own (an upsert's update
    /// and insert): each binds the placeholders it has, and may leave some of the values to
    /// the other parts.
    static SHARED_PARAMETERS: ();
}

/// Runs `parts` of one statement, which share its parameter values (see [`SHARED_PARAMETERS`]).
pub(crate) async fn sharing_parameters<F: std::future::Future>(parts: F) -> F::Output {
    SHARED_PARAMETERS.scope((), parts).await
}

/// `plan` with its placeholders `$1..$n` replaced by `params`, each cast to the type DataFusion
/// inferred for its placeholder (a client may send an `Int64` for an `Int32` column). The
/// values go into the plan as literals, never into SQL text.
pub(crate) fn bind_parameters(plan: LogicalPlan, params: &[ScalarValue]) -> Result<LogicalPlan> {
    let types = plan.get_parameter_types()?;
    let part = SHARED_PARAMETERS.try_with(|_| ()).is_ok();
    if types.len() != params.len() && !(part && types.len() < params.len()) {
        return Err(SchedulerError::invalid(format!(
            "the statement has {} parameter(s) and {} value(s) were bound",
            types.len(),
            params.len()
        )));
    }
    if params.is_empty() {
        return Ok(plan);
    }
    let values = params
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let name = format!("${}", i + 1);
            match types.get(&name) {
                // A placeholder DataFusion could not type (`SELECT $1 + $2`) takes the value's.
                Some(Some(wanted)) if value.data_type() != *wanted && !wanted.is_null() => {
                    value.cast_to(wanted).map_err(|e| {
                        SchedulerError::invalid(format!(
                            "parameter {name}: cannot use {value} as {wanted}: {e}"
                        ))
                    })
                }
                Some(_) => Ok(value.clone()),
                // A value another part of the statement uses.
                None if part => Ok(value.clone()),
                None => Err(SchedulerError::invalid(format!(
                    "the statement has no parameter {name}: number them $1, $2, ..."
                ))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(plan.with_param_values(ParamValues::from(values))?)
}

/// Optimizes `plan` in `state` and plans it physically: in `shared`'s router state when the
/// query (or the query an `EXPLAIN` shows) is pinned to one shard group ([`router`]).
async fn optimized_physical_plan(
    state: &SessionState,
    shared: Option<&SharedSession>,
    plan: &LogicalPlan,
) -> Result<Arc<dyn ExecutionPlan>> {
    let optimized = state.optimize(plan)?;
    let shown = match &optimized {
        LogicalPlan::Explain(explain) => explain.plan.as_ref(),
        LogicalPlan::Analyze(analyze) => analyze.input.as_ref(),
        query => query,
    };
    let state = match shared {
        Some(shared) if router::is_pinned(shown) => shared.router_state(),
        _ => state,
    };
    Ok(state
        .query_planner()
        .create_physical_plan(&optimized, state)
        .await?)
}

/// The rows of `sql`, a query a statement runs on its way (the rows an `UPDATE ... FROM`
/// changes), planned in `session` as `access` may, run at once within `control`'s memory
/// limit.
pub(crate) async fn query_rows(
    session: &SessionContext,
    sql: &str,
    access: &Access<'_>,
    params: &[ScalarValue],
    control: &StatementControl,
) -> Result<(
    datafusion::arrow::datatypes::SchemaRef,
    Vec<datafusion::arrow::array::RecordBatch>,
)> {
    let [statement] = <[DFStatement; 1]>::try_from(crate::coordinator::parse(sql)?)
        .map_err(|_| SchedulerError::invalid(format!("not one query: {sql}")))?;
    let planned = physical_plan(
        &session.state(),
        None,
        session.task_ctx(),
        statement,
        access,
        params,
    )
    .await?;
    let schema = planned.plan.schema();
    let plan = shardfusion_common::yielding_joins::yielding_joins(planned.plan)?;
    let batches = collect(plan, control.task_context(planned.task_ctx)).await?;
    Ok((schema, batches))
}
