//! [`PlanCache`]: logical plans of query shapes, kept per shared session.
//!
//! A query's shape ([`StatementShape`]) is planned from SQL once, with `$n` placeholders where
//! its compared literals were; each later statement of that shape (any values, any client,
//! and a prepared statement run again) fills its values into that plan, then runs DataFusion's
//! analyzer and optimizer and the physical planner as a statement planned from its text would
//! — the way DataFusion's own `PREPARE`/`EXECUTE` works. So it skips parsing into a plan,
//! name resolution and placeholder typing, and nothing is optimized with placeholders in it:
//! DataFusion's optimizer treats distinct expressions as distinct values (`id IN ($1, $2) AND
//! id IN ($3, $4)` would become an empty intersection), so optimizing a plan with placeholders
//! could change answers.
//!
//! The cache lives in the [`crate::session::session_cache::SharedSession`] of one catalog
//! snapshot, since a plan names that snapshot's tables and files: any catalog change (DDL, a
//! commit, a shard move, a node change) starts a new session with an empty cache.
//!
//! A shape is kept only when reusing its plan cannot change an answer; otherwise it is
//! remembered as not cacheable and planned from the text every time:
//! - it reads only distributed, reference, local tables and the Citus metadata relations,
//!   which a snapshot fixes (not `shardfusion_stat_*` or `information_schema`, which are read
//!   when planned);
//! - it calls no volatile or stable function (`random()`, `now()`);
//! - every placeholder got a type from the column it is compared with, and an integer is
//!   compared with a numeric column, a float with a float column, text with a non-numeric one.
//!
//! Each value is cast to its placeholder's type; if that fails or loses information (`1.5`
//! against an integer column, an invalid date), the statement is planned from its text, as
//! DataFusion would, and its own error or coercion applies.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{LogicalPlan, Volatility};
use parking_lot::Mutex;
use shardfusion_catalog::metadata_tables::MetadataTableProvider;

use crate::planner::function_volatility::least_stable;
use crate::session::statement_shape::{LiteralKind, StatementShape};
use crate::session::table_provider::ShardedTableProvider;

/// Shapes kept per session; past this, new shapes are planned from their text every time.
pub const MAX_CACHED_SHAPES: usize = 1024;

/// What is known of a shape.
#[derive(Debug)]
enum CachedShape {
    /// Its plan cannot be reused (see the module docs).
    NotCacheable,
    Plan {
        /// As planned from the SQL, with placeholders (not analyzed or optimized yet).
        plan: LogicalPlan,
        /// The type of `$1, $2, ...`.
        types: Vec<DataType>,
    },
}

/// The plans of the query shapes seen in one shared session, keyed by
/// [`StatementShape::key`].
#[derive(Debug, Default)]
pub struct PlanCache {
    shapes: Mutex<HashMap<String, Arc<CachedShape>>>,
}

impl PlanCache {
    /// The logical plan of `shape` with its values filled in, ready to be optimized, if its
    /// shape can be cached; a shape seen for the first time is planned and kept. `None`:
    /// plan the statement from its text.
    pub async fn logical_plan(
        &self,
        state: &SessionState,
        shape: &StatementShape,
    ) -> Option<LogicalPlan> {
        let (cached, full) = {
            let shapes = self.shapes.lock();
            (
                shapes.get(&shape.key).cloned(),
                shapes.len() >= MAX_CACHED_SHAPES,
            )
        };
        let cached = match cached {
            Some(cached) => cached,
            // No room to keep its plan: planning it here would only be done twice.
            None if full => return None,
            None => {
                let planned = Arc::new(plan_shape(state, shape).await);
                let mut shapes = self.shapes.lock();
                if shapes.len() < MAX_CACHED_SHAPES {
                    shapes.insert(shape.key.clone(), Arc::clone(&planned));
                }
                planned
            }
        };
        let CachedShape::Plan { plan, types } = cached.as_ref() else {
            return None;
        };
        let values = cast_values(&shape.values, types)?;
        plan.clone()
            .with_param_values(ParamValues::from(values))
            .ok()
    }
}

/// Plans `shape` with placeholders, if reusing the plan is safe.
async fn plan_shape(state: &SessionState, shape: &StatementShape) -> CachedShape {
    let Ok(plan) = state.statement_to_plan(shape.statement.clone()).await else {
        return CachedShape::NotCacheable;
    };
    if !reusable(&plan) {
        return CachedShape::NotCacheable;
    }
    match placeholder_types(&plan, &shape.values) {
        Some(types) => CachedShape::Plan { plan, types },
        None => CachedShape::NotCacheable,
    }
}

/// Whether `plan` is a query over snapshot-fixed tables calling only immutable functions.
fn reusable(plan: &LogicalPlan) -> bool {
    if matches!(
        plan,
        LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
    ) || least_stable(plan) != Volatility::Immutable
    {
        return false;
    }
    let mut reusable = true;
    let walked = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            reusable &= source_as_provider(&scan.source).is_ok_and(|provider| {
                provider.is::<ShardedTableProvider>() || provider.is::<MetadataTableProvider>()
            });
        }
        Ok(if reusable {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    walked.is_ok() && reusable
}

/// The inferred type of each placeholder, if every one has a type that suits its literal.
fn placeholder_types(plan: &LogicalPlan, values: &[ScalarValue]) -> Option<Vec<DataType>> {
    let inferred = plan.get_parameter_types().ok()?;
    if inferred.len() != values.len() {
        return None;
    }
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let data_type = inferred.get(&format!("${}", i + 1))?.clone()?;
            // DataFusion compares an integer literal with any number exactly (at the wider
            // type), but a float literal with an integer or decimal column as floats:
            // casting it to the column's type instead could match other rows.
            let numeric = data_type.is_numeric();
            let suits = match StatementShape::kind(value) {
                LiteralKind::Integer => numeric,
                LiteralKind::Float => data_type.is_floating(),
                LiteralKind::Text => !numeric && !matches!(data_type, DataType::Boolean),
            };
            suits.then_some(data_type)
        })
        .collect()
}

/// `values` cast to `types`, if every cast is exact (casting back gives the value again).
fn cast_values(values: &[ScalarValue], types: &[DataType]) -> Option<Vec<ScalarValue>> {
    values
        .iter()
        .zip(types)
        .map(|(value, data_type)| {
            let cast = value.cast_to(data_type).ok()?;
            if cast.is_null() {
                return None;
            }
            let back = cast.cast_to(&value.data_type()).ok()?;
            (back == *value).then_some(cast)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cast_only_when_exact() {
        let int = DataType::Int32;
        assert_eq!(
            cast_values(&[ScalarValue::Int64(Some(7))], std::slice::from_ref(&int)),
            Some(vec![ScalarValue::Int32(Some(7))])
        );
        assert_eq!(
            cast_values(
                &[ScalarValue::Int64(Some(1 << 40))],
                std::slice::from_ref(&int)
            ),
            None
        );
        assert_eq!(
            cast_values(&[ScalarValue::Float64(Some(1.5))], &[DataType::Int64]),
            None
        );
        let date = cast_values(
            &[ScalarValue::Utf8(Some("1995-03-15".into()))],
            &[DataType::Date32],
        );
        assert!(matches!(
            date.as_deref(),
            Some([ScalarValue::Date32(Some(_))])
        ));
        assert_eq!(
            cast_values(
                &[ScalarValue::Utf8(Some("1995-3-15".into()))],
                &[DataType::Date32]
            ),
            None
        );
        assert_eq!(
            cast_values(
                &[ScalarValue::Utf8(Some("no date".into()))],
                &[DataType::Date32]
            ),
            None
        );
        assert_eq!(
            cast_values(
                &[ScalarValue::Float64(Some(1.25))],
                &[DataType::Decimal128(15, 2)]
            ),
            Some(vec![ScalarValue::Decimal128(Some(125), 15, 2)])
        );
        assert_eq!(
            cast_values(
                &[ScalarValue::Float64(Some(1.255))],
                &[DataType::Decimal128(15, 2)]
            ),
            None
        );
    }
}
