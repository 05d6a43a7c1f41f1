//! Citus's read-only set-returning functions in `FROM`: `SELECT * FROM
//! get_rebalance_progress()`, `SELECT count(*) FROM get_rebalance_table_shards_plan('t')`,
//! as Citus users query them. Each function whose registry entry has `rows` is registered
//! as a DataFusion table function; its (constant, positional) arguments become a
//! [`FunctionCall`] and its rows an in-memory table, computed when the statement is planned.

use std::sync::{Arc, Weak};

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::Expr;

use crate::cluster::Cluster;
use crate::coordinator::StatementOutput;
use crate::statements::functions::FunctionCall;
use crate::statements::functions::registry::{CitusFunction, FUNCTIONS};

/// One Citus function as a table function. It holds the cluster weakly: the cluster's
/// sessions hold it.
#[derive(Debug)]
struct CitusTableFunction {
    cluster: Weak<Cluster>,
    function: &'static CitusFunction,
    name: &'static str,
}

impl TableFunctionImpl for CitusTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs<'_, '_>) -> Result<Arc<dyn TableProvider>> {
        let cluster = self
            .cluster
            .upgrade()
            .ok_or_else(|| DataFusionError::Execution("the coordinator is stopping".into()))?;
        let mut values = Vec::with_capacity(args.exprs().len());
        for expr in args.exprs() {
            match expr {
                Expr::Literal(value, _) => values.push(value.clone()),
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "arguments of {} must be constants, got {other}",
                        self.name
                    )));
                }
            }
        }
        let rows = self.function.rows.ok_or_else(|| {
            DataFusionError::Plan(format!("{} cannot be used in FROM", self.name))
        })?;
        let call = FunctionCall::with_arguments(self.function, self.name, values);
        let answer = rows(&cluster, &call)
            .map_err(|e| shardfusion_common::status::from_status(tonic::Status::from(e)))?;
        match answer {
            StatementOutput::Rows { schema, batches } => {
                Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
            }
            _ => Err(DataFusionError::Internal(format!(
                "{} returned no rows",
                self.name
            ))),
        }
    }
}

/// Registers every read-only set-returning Citus function of the registry in `state`.
pub fn register(state: &mut SessionState, cluster: &Arc<Cluster>) {
    for function in FUNCTIONS.iter().copied().filter(|f| f.rows.is_some()) {
        for name in function.names {
            state.register_udtf(
                name,
                Arc::new(CitusTableFunction {
                    cluster: Arc::downgrade(cluster),
                    function,
                    name,
                }),
            );
        }
    }
}
