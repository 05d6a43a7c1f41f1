//! PostgreSQL's sequence functions: `nextval`, `currval`, `setval` and `lastval`.
//!
//! Values come from the catalog in blocks ([`SequenceCache`]): a call for a batch of `n` rows
//! reserves at least `n` values in one catalog transaction, so a bulk load does not serialize
//! on its sequence, and short inserts take values from a block reserved earlier. Like
//! PostgreSQL's `CACHE`, values reserved but not handed out before a restart are skipped.
//! Values are handed out only on the coordinator, so they are unique across all shards; a
//! plan calling a sequence function keeps that part of the plan on the coordinator
//! ([`calls_sequence_function`]).
//!
//! `currval` and `lastval` read what `nextval` and `setval` returned in the *client session*
//! ([`SessionSequences`]). The session statements share holds unbound functions; a statement
//! calling one is bound to its client session before it runs ([`bind_to_session`]), with the
//! session given to its planning by [`in_session`].

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{Array, AsArray, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_plan::PhysicalExpr;
use parking_lot::Mutex;
use shardfusion_catalog::{Catalog, CatalogError};

/// How many values a call reserves at least, when its sequence's block is used up.
const BLOCK_VALUES: u64 = 32;

/// Values reserved from the catalog and not yet handed out, per sequence.
#[derive(Debug)]
pub struct SequenceCache {
    catalog: Arc<Catalog>,
    blocks: Arc<Mutex<HashMap<String, Reserved>>>,
    /// A transaction's catalog branch: the sequences its DDL created are there only, and
    /// their values come from it directly (they are not cached for other sessions).
    branch: Option<Arc<Catalog>>,
}

#[derive(Debug, Clone, Copy)]
struct Reserved {
    sequence_id: i64,
    next: i64,
    remaining: u64,
    increment: i64,
}

impl SequenceCache {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            blocks: Arc::default(),
            branch: None,
        }
    }

    /// The same cache for a statement of a transaction whose DDL changes `branch`.
    pub fn with_branch(&self, branch: Arc<Catalog>) -> Self {
        Self {
            catalog: Arc::clone(&self.catalog),
            blocks: Arc::clone(&self.blocks),
            branch: Some(branch),
        }
    }

    /// The transaction's branch, if `name` exists only there.
    fn branch_only(&self, name: &str) -> Option<&Arc<Catalog>> {
        if self.catalog.snapshot().sequences.contains_key(name) {
            return None;
        }
        (self.branch.as_ref()).filter(|b| b.snapshot().sequences.contains_key(name))
    }

    /// The next `count` values of sequence `name`, in order.
    pub fn next_values(&self, name: &str, count: u64) -> Result<Vec<i64>, CatalogError> {
        if let Some(branch) = self.branch_only(name) {
            let block = branch.reserve_sequence_values(name, count, count)?;
            let mut reserved = Reserved {
                sequence_id: block.sequence_id,
                next: block.first,
                remaining: block.count,
                increment: block.increment,
            };
            let mut values = Vec::with_capacity(count as usize);
            take(&mut reserved, count, &mut values);
            return Ok(values);
        }
        let id = self
            .catalog
            .snapshot()
            .sequences
            .get(name)
            .map(|meta| meta.id)
            .ok_or_else(|| CatalogError::SequenceNotFound {
                name: name.to_string(),
            })?;
        let mut blocks = self.blocks.lock();
        let mut values = Vec::with_capacity(count as usize);
        if let Some(reserved) = blocks.get_mut(name).filter(|r| r.sequence_id == id) {
            take(reserved, count, &mut values);
        }
        let missing = count - values.len() as u64;
        if missing > 0 {
            let block = self
                .catalog
                .reserve_sequence_values(name, missing, BLOCK_VALUES)?;
            let mut reserved = Reserved {
                sequence_id: block.sequence_id,
                next: block.first,
                remaining: block.count,
                increment: block.increment,
            };
            take(&mut reserved, missing, &mut values);
            blocks.insert(name.to_string(), reserved);
        }
        Ok(values)
    }

    /// `setval`: later values continue from `value`.
    pub fn set_value(&self, name: &str, value: i64, is_called: bool) -> Result<(), CatalogError> {
        if let Some(branch) = self.branch_only(name) {
            return branch.set_sequence_value(name, value, is_called);
        }
        let mut blocks = self.blocks.lock();
        blocks.remove(name);
        self.catalog.set_sequence_value(name, value, is_called)
    }

    /// Whether the sequence `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.catalog.snapshot().sequences.contains_key(name) || self.branch_only(name).is_some()
    }

    /// Forgets what was reserved from `name` (it was dropped).
    pub fn forget(&self, name: &str) {
        self.blocks.lock().remove(name);
    }
}

fn take(reserved: &mut Reserved, count: u64, values: &mut Vec<i64>) {
    let n = count.min(reserved.remaining);
    for _ in 0..n {
        values.push(reserved.next);
        reserved.next = reserved.next.wrapping_add(reserved.increment);
    }
    reserved.remaining -= n;
}

/// What `nextval` and `setval` returned in one client session, for `currval` and `lastval`.
#[derive(Debug, Default)]
pub struct SessionSequences {
    values: Mutex<(HashMap<String, i64>, Option<i64>)>,
    /// Whether a statement calling a sequence function was bound to it: the client session
    /// then lasts (as a `SET` makes it), so that its later statements see the values.
    used: AtomicBool,
}

impl SessionSequences {
    /// Whether a statement of the session called a sequence function.
    pub fn used(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    fn record(&self, name: &str, value: i64) {
        let mut values = self.values.lock();
        values.0.insert(name.to_string(), value);
        values.1 = Some(value);
    }

    fn current(&self, name: &str) -> Option<i64> {
        self.values.lock().0.get(name).copied()
    }

    fn last(&self) -> Option<i64> {
        self.values.lock().1
    }
}

tokio::task_local! {
    static SESSION: Arc<SessionSequences>;
}

/// Runs `planning` with sequence functions bound to `session`'s values.
pub async fn in_session<F: Future>(session: Arc<SessionSequences>, planning: F) -> F::Output {
    SESSION.scope(session, planning).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Next,
    Current,
    Set,
    Last,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Next, Kind::Current, Kind::Set, Kind::Last];

    fn name(self) -> &'static str {
        match self {
            Kind::Next => "nextval",
            Kind::Current => "currval",
            Kind::Set => "setval",
            Kind::Last => "lastval",
        }
    }

    fn signature(self) -> Signature {
        match self {
            Kind::Next | Kind::Current => Signature::string(1, Volatility::Volatile),
            Kind::Set => Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64, DataType::Boolean]),
                ],
                Volatility::Volatile,
            ),
            Kind::Last => Signature::nullary(Volatility::Volatile),
        }
    }
}

/// One of the sequence functions, bound to a client session or not.
#[derive(Debug)]
pub struct SequenceFunction {
    kind: Kind,
    signature: Signature,
    cache: Arc<SequenceCache>,
    session: Option<Arc<SessionSequences>>,
}

impl PartialEq for SequenceFunction {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && Arc::ptr_eq(&self.cache, &other.cache)
            && match (&self.session, &other.session) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for SequenceFunction {}

impl Hash for SequenceFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
    }
}

impl SequenceFunction {
    /// Bound to `session`, and to the catalog branch of the transaction the statement runs
    /// in, if its DDL made one.
    fn bound(&self, session: Arc<SessionSequences>) -> Result<Self> {
        let transaction = crate::session::transaction::current().filter(|t| t.is_branched());
        let cache = match transaction {
            Some(transaction) => {
                let branch = transaction.ddl_catalog().map_err(DataFusionError::from)?;
                Arc::new(self.cache.with_branch(branch))
            }
            None => Arc::clone(&self.cache),
        };
        Ok(Self {
            kind: self.kind,
            signature: self.signature.clone(),
            cache,
            session: Some(session),
        })
    }

    fn record(&self, name: &str, value: i64) {
        if let Some(session) = &self.session {
            session.record(name, value);
        }
    }

    fn not_defined(&self, what: &str) -> DataFusionError {
        let status = shardfusion_common::status::with_sqlstate(
            tonic::Status::failed_precondition(format!(
                "{what} is not yet defined in this session"
            )),
            "55000",
        );
        shardfusion_common::status::from_status(status)
    }
}

/// Registers the (unbound) sequence functions in `state`.
pub fn register(state: &mut SessionState, cache: &Arc<SequenceCache>) -> Result<()> {
    for kind in Kind::ALL {
        let function = SequenceFunction {
            kind,
            signature: kind.signature(),
            cache: Arc::clone(cache),
            session: None,
        };
        state.register_udf(Arc::new(ScalarUDF::from(function)))?;
    }
    Ok(())
}

impl ScalarUDFImpl for SequenceFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        match self.kind {
            Kind::Last => {
                let last = self.session.as_ref().and_then(|s| s.last());
                let value = last.ok_or_else(|| self.not_defined("lastval"))?;
                Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(value))))
            }
            Kind::Next => {
                let names = names(&args.args[0], rows)?;
                let mut out = Vec::with_capacity(rows);
                // A constant name (the usual call) takes its whole batch in one reservation.
                if let Some(name) = constant_name(&names) {
                    let values = self
                        .cache
                        .next_values(name, rows as u64)
                        .map_err(external)?;
                    if let Some(last) = values.last() {
                        self.record(name, *last);
                    }
                    return Ok(ColumnarValue::Array(Arc::new(Int64Array::from(values))));
                }
                for name in &names {
                    let Some(name) = name else {
                        out.push(None);
                        continue;
                    };
                    let value = self.cache.next_values(name, 1).map_err(external)?[0];
                    self.record(name, value);
                    out.push(Some(value));
                }
                Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
            }
            Kind::Current => {
                let names = names(&args.args[0], rows)?;
                let mut out = Vec::with_capacity(rows);
                for name in &names {
                    let Some(name) = name else {
                        out.push(None);
                        continue;
                    };
                    let session = self.session.as_ref();
                    let value = session.and_then(|s| s.current(name));
                    let value = match value {
                        Some(value) => value,
                        None if !self.cache.exists(name) => {
                            return Err(external(CatalogError::SequenceNotFound {
                                name: name.clone(),
                            }));
                        }
                        None => {
                            let what = format!("currval of sequence \"{name}\"");
                            return Err(self.not_defined(&what));
                        }
                    };
                    out.push(Some(value));
                }
                Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
            }
            Kind::Set => {
                let arrays = ColumnarValue::values_to_arrays(&args.args)?;
                let names = arrays[0].as_string::<i32>();
                let values = arrays[1].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let called = arrays.get(2).map(|a| a.as_boolean().clone());
                let mut out = Vec::with_capacity(rows);
                for i in 0..rows {
                    // Strict, as in PostgreSQL: a NULL argument changes nothing.
                    let null_called = called.as_ref().is_some_and(|c| c.is_null(i));
                    if names.is_null(i) || values.is_null(i) || null_called {
                        out.push(None);
                        continue;
                    }
                    let is_called = called.as_ref().is_none_or(|c| c.value(i));
                    let (name, value) = (names.value(i), values.value(i));
                    self.cache
                        .set_value(name, value, is_called)
                        .map_err(external)?;
                    // `currval` sees it; `lastval` stays what `nextval` returned last.
                    if is_called && let Some(session) = &self.session {
                        session.values.lock().0.insert(name.to_string(), value);
                    }
                    out.push(Some(value));
                }
                Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
            }
        }
    }
}

/// The sequence names of a batch (`regclass` arguments are given as text).
fn names(arg: &ColumnarValue, rows: usize) -> Result<Vec<Option<String>>> {
    let array = arg.to_array(rows)?;
    let array = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
    let strings = array.as_string::<i32>();
    Ok((0..rows)
        .map(|i| (!strings.is_null(i)).then(|| sequence_name(strings.value(i))))
        .collect())
}

/// A sequence name as `regclass` text reads it: unquoted names fold to lower case, and the
/// default schema may qualify it.
pub fn sequence_name(text: &str) -> String {
    let text = text.strip_prefix("public.").unwrap_or(text);
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

fn constant_name(names: &[Option<String>]) -> Option<&str> {
    let first = names.first()?.as_deref()?;
    names
        .iter()
        .all(|n| n.as_deref() == Some(first))
        .then_some(first)
}

/// A catalog error inside DataFusion, keeping the status it has outside (`NotFound` for an
/// unknown sequence, `OutOfRange` for an exhausted one).
fn external(error: CatalogError) -> DataFusionError {
    crate::error::SchedulerError::from(error).into()
}

/// `plan` with its sequence functions bound to the client session its planning runs in
/// ([`in_session`]); unchanged if it calls none, or runs in no session.
pub fn bind_to_session(plan: LogicalPlan) -> Result<LogicalPlan> {
    let Ok(session) = SESSION.try_with(Arc::clone) else {
        return Ok(plan);
    };
    let bound = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| expr.transform_up(|e| bind_call(e, &session)))
    })?;
    Ok(bound.data)
}

/// `expr` with its sequence functions bound as [`bind_to_session`] binds a plan's.
pub fn bind_expr(expr: Expr) -> Result<Expr> {
    let Ok(session) = SESSION.try_with(Arc::clone) else {
        return Ok(expr);
    };
    Ok(expr.transform_up(|e| bind_call(e, &session))?.data)
}

/// `e` bound to `session` if it calls a sequence function.
fn bind_call(e: Expr, session: &Arc<SessionSequences>) -> Result<Transformed<Expr>> {
    let Expr::ScalarFunction(call) = &e else {
        return Ok(Transformed::no(e));
    };
    let Some(function) = call.func.inner().downcast_ref::<SequenceFunction>() else {
        return Ok(Transformed::no(e));
    };
    session.used.store(true, Ordering::Release);
    let func = ScalarUDF::from(function.bound(Arc::clone(session))?);
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(Arc::new(func), call.args.clone()),
    )))
}

/// Refuses the sequence functions `plan` calls that `access` may not call. As no `GRANT ...
/// ON SEQUENCE` exists yet, a sequence's rights follow its table's: `nextval` of a sequence
/// a column owns needs INSERT or UPDATE on that table; `setval`, and `nextval` of any other
/// sequence, need a superuser; `currval` and `lastval` only read the session's own values.
pub fn authorize(plan: &LogicalPlan, access: &crate::auth::Access<'_>) -> crate::error::Result<()> {
    use shardfusion_catalog::roles::TablePrivilege;
    if access.is_superuser() {
        return Ok(());
    }
    let mut refusal = None;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                let Expr::ScalarFunction(call) = e else {
                    return Ok(TreeNodeRecursion::Continue);
                };
                let Some(function) = call.func.inner().downcast_ref::<SequenceFunction>() else {
                    return Ok(TreeNodeRecursion::Continue);
                };
                let name = match call.args.first() {
                    Some(Expr::Literal(value, _)) => {
                        value.try_as_str().flatten().map(sequence_name)
                    }
                    _ => None,
                };
                let owner = name.as_ref().and_then(|name| {
                    let sequence = access.snapshot().sequences.get(name)?;
                    let (table_id, _) = sequence.owned_by.as_ref()?;
                    access
                        .snapshot()
                        .tables
                        .values()
                        .find(|t| t.table_id == *table_id)
                        .map(|t| t.name.clone())
                });
                let allowed = match (function.kind, owner) {
                    (Kind::Current | Kind::Last, _) => true,
                    (Kind::Next, Some(table)) => {
                        access.has_table_privilege(&table, TablePrivilege::Insert)
                            || access.has_table_privilege(&table, TablePrivilege::Update)
                    }
                    _ => false,
                };
                if allowed {
                    return Ok(TreeNodeRecursion::Continue);
                }
                refusal = Some(crate::error::SchedulerError::PermissionDenied {
                    message: format!(
                        "permission denied for sequence {}: {} needs a superuser{}",
                        name.as_deref().unwrap_or("(computed name)"),
                        function.kind.name(),
                        if function.kind == Kind::Next {
                            ", or INSERT or UPDATE on the table whose column owns it"
                        } else {
                            ""
                        }
                    ),
                });
                Ok(TreeNodeRecursion::Stop)
            })
        })
    });
    refusal.map_or(Ok(()), Err)
}

/// Whether the logical `expr` calls a sequence function.
pub fn calls_sequence_function_in(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(e, Expr::ScalarFunction(call)
            if call.func.inner().downcast_ref::<SequenceFunction>().is_some()))
    })
    .unwrap_or(false)
}

/// Whether `expr` calls a sequence function, which only the coordinator can run.
pub fn calls_sequence_function(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        if let Some(call) = e.downcast_ref::<ScalarFunctionExpr>()
            && call
                .fun()
                .inner()
                .downcast_ref::<SequenceFunction>()
                .is_some()
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regclass_text_folds_unquoted_names() {
        assert_eq!(sequence_name("Orders_ID_seq"), "orders_id_seq");
        assert_eq!(sequence_name("public.s"), "s");
        assert_eq!(sequence_name("\"Mixed\"\"Case\""), "Mixed\"Case");
    }

    #[test]
    fn blocks_hand_out_values_in_order_across_calls() {
        let catalog = Arc::new(Catalog::open_in_memory().expect("catalog"));
        let meta = shardfusion_catalog::sequence_store::SequenceMeta::new(
            "s",
            shardfusion_catalog::sequence_store::SequenceType::BigInt,
        );
        catalog.create_sequence(&meta, false).expect("created");
        let cache = SequenceCache::new(Arc::clone(&catalog));
        assert_eq!(cache.next_values("s", 3).expect("values"), [1, 2, 3]);
        // The rest of the first block is used before another is reserved.
        assert_eq!(catalog.sequence_value("s").expect("state").0, 32);
        assert_eq!(cache.next_values("s", 40).expect("values")[39], 43);
        cache.set_value("s", 100, true).expect("setval");
        assert_eq!(cache.next_values("s", 1).expect("value"), [101]);
        // Dropped and created again: the cached block of the old one is not used.
        catalog.drop_sequence("s", false).expect("dropped");
        catalog
            .create_sequence(&meta, false)
            .expect("created again");
        assert_eq!(cache.next_values("s", 1).expect("value"), [1]);
    }
}
