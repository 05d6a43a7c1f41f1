//! How stable the functions a plan calls are: the least stable one decides.
//!
//! Two things depend on it. A plan calling a stable function (`now()`, `current_date`) needs
//! the statement's start time: DataFusion's optimizer folds such calls into literals of that
//! time, and a shared session has none of its own, so such a statement plans in a copy
//! marked with its start ([`crate::statements::query`]). And a plan calling anything but immutable
//! functions is never reused for another statement ([`crate::session::plan_cache`]).

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};

/// The least stable volatility of the scalar functions `plan` calls, subqueries included
/// (`Immutable` when it calls none).
pub fn least_stable(plan: &LogicalPlan) -> Volatility {
    let mut least = Volatility::Immutable;
    let walked = plan.apply_with_subqueries(|node| {
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
    // The walk itself never fails; if it did, assume the worst.
    if walked.is_err() {
        return Volatility::Volatile;
    }
    least
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn volatility_of(sql: &str) -> Volatility {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT, b TEXT) AS VALUES (1, 'x')")
            .await
            .expect("table");
        let plan = ctx.state().create_logical_plan(sql).await.expect("a plan");
        least_stable(&plan)
    }

    #[tokio::test]
    async fn the_least_stable_call_decides_subqueries_included() {
        assert_eq!(
            volatility_of("SELECT a + 1, upper(b) FROM t WHERE a = 1").await,
            Volatility::Immutable
        );
        assert_eq!(
            volatility_of("SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE now() > now())").await,
            Volatility::Stable
        );
        assert_eq!(
            volatility_of("SELECT a, now() FROM t WHERE random() < 0.5").await,
            Volatility::Volatile
        );
    }
}
