//! How stable the functions a plan calls are: the least stable one decides.
//!
//! Two things depend on it. A plan calling a stable function (`now()`, `current_date`) needs
//! the statement's start time: DataFusion's optimizer folds such calls into literals of that
//! time, and a shared session has none of its own, so such a statement plans in a copy
//! marked with its start ([`crate::coordinator`]). And a plan calling anything but immutable
//! functions is never reused for another statement ([`crate::session::plan_cache`]).

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};

/// The least stable volatility of the scalar functions `plan` calls, subqueries included
/// (`Immutable` when it calls none).
pub fn least_stable(plan: &LogicalPlan) -> Volatility {
    let mut least = Volatility::Immutable;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    least = least.max(f.func.signature().volatility);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if least == Volatility::Volatile {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    least
}
