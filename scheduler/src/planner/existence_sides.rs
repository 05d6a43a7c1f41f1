//! The side of a semi, anti or mark join that only shows which keys exist (Citus and
//! DataFusion call it the filtering side) moves between workers as its distinct rows: the
//! join's answer depends on whether a match exists, never on how many. A worker dedupes that
//! side before its rows are shuffled, so `NOT EXISTS (SELECT * FROM orders WHERE o_custkey =
//! c_custkey)` ships each customer key a worker holds once, not once per order.

use std::sync::Arc;

use datafusion::common::{JoinType, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::joins::HashJoinExec;

use super::broadcast::JoinSide;

/// Whether only the existence of matches on `side` of `join` matters: it is the filtering
/// side of a semi, anti or mark join whose condition is the equi-keys alone (no residual
/// filter over its other columns, not null-aware).
pub fn existence_only(join: &HashJoinExec, side: JoinSide) -> bool {
    if join.filter().is_some() || join.null_aware {
        return false;
    }
    match side {
        JoinSide::Right => matches!(
            join.join_type(),
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark
        ),
        JoinSide::Left => matches!(
            join.join_type(),
            JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark
        ),
    }
}

/// `input`'s distinct rows, per partition (a partial aggregate grouped by every column, in
/// order, so the schema and the column positions stay the same), if `side` of `join` only
/// shows which keys exist; else `input` as it is.
pub fn shipped_rows(
    join: &HashJoinExec,
    side: JoinSide,
    input: &Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if !existence_only(join, side) {
        return Ok(Arc::clone(input));
    }
    let schema = input.schema();
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            (
                Arc::new(Column::new(field.name(), i)) as _,
                field.name().clone(),
            )
        })
        .collect();
    Ok(Arc::new(AggregateExec::try_new(
        AggregateMode::Partial,
        PhysicalGroupBy::new_single(columns),
        Vec::new(),
        Vec::new(),
        Arc::clone(input),
        schema,
    )?))
}
