//! The parameters (`$1`, `$2`, or `?` from ADBC and JDBC) of `UPDATE` and `DELETE`, which
//! ShardFusion runs itself rather than through DataFusion's planner: their types, as a
//! prepared statement announces them ([`parameters`]), and their values bound into the
//! statement's expressions as literals ([`bind_placeholders`]), never into SQL text.

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, lit};
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, FromTable, Ident, Statement, UpdateTableFromKind,
};

use crate::error::{Result, SchedulerError};
use crate::write::row_changes::target;

/// `expr` with each placeholder `$n` replaced by the value `params[n - 1]`.
pub(crate) fn bind_placeholders(expr: Expr, params: &[ScalarValue]) -> Result<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let bound = expr.transform(|e| match e {
        Expr::Placeholder(placeholder) => {
            let value = (placeholder.id.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| params.get(n.checked_sub(1)?))
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Plan(format!(
                        "no value for placeholder {} ({} given)",
                        placeholder.id,
                        params.len()
                    ))
                })?;
            Ok(Transformed::yes(lit(value.clone())))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(bound.data)
}

/// The placeholders (`$1`, `$2`, ...) of an `UPDATE` or `DELETE`, typed as DataFusion infers
/// them in a query with the same expressions (a value set to a column as that column's type),
/// `Null` where it cannot.
pub async fn parameters(state: &SessionState, statement: &Statement) -> Result<Vec<Field>> {
    let (target, from, selection, set) = match statement {
        Statement::Update(update) => {
            let from = match &update.from {
                Some(UpdateTableFromKind::AfterSet(f) | UpdateTableFromKind::BeforeSet(f)) => {
                    f.clone()
                }
                None => Vec::new(),
            };
            // The set column is the target's, whatever else FROM has of that name.
            let (name, alias) = target(&update.table)?;
            let qualifier = Ident::with_quote('"', alias.unwrap_or(name)).to_string();
            let set: Vec<String> = (update.assignments.iter())
                .filter_map(|a| match &a.target {
                    AssignmentTarget::ColumnName(c) => {
                        let column = c.0.last()?.as_ident()?;
                        Some(format!("{qualifier}.{column} = ({})", a.value))
                    }
                    AssignmentTarget::Tuple(_) => None,
                })
                .collect();
            (&update.table, from, update.selection.as_ref(), set)
        }
        Statement::Delete(delete) => {
            let (FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f)) = &delete.from;
            let target = f
                .first()
                .ok_or_else(|| SchedulerError::invalid("DELETE of nothing"))?;
            let from = delete.using.clone().unwrap_or_default();
            (target, from, delete.selection.as_ref(), Vec::new())
        }
        _ => return Ok(Vec::new()),
    };
    let mut tables = vec![target.to_string()];
    tables.extend(from.iter().map(ToString::to_string));
    let mut conditions: Vec<String> = selection.map(|s| format!("({s})")).into_iter().collect();
    // `c = (value)`: the value's placeholders take the column's type.
    conditions.extend(set.into_iter().map(|c| format!("({c})")));
    let mut sql = format!("SELECT 1 FROM {}", tables.join(", "));
    if !conditions.is_empty() {
        sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    let [query] = <[_; 1]>::try_from(crate::coordinator::parse(&sql)?)
        .map_err(|_| SchedulerError::invalid("UPDATE or DELETE as one query"))?;
    let plan = state.statement_to_plan(query).await?;
    let mut fields: Vec<(usize, Field)> = Vec::new();
    for (name, field) in plan.get_parameter_fields()? {
        let position = (name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let data_type = field.map_or(DataType::Null, |f| f.data_type().clone());
        fields.push((position, Field::new(name, data_type, true)));
    }
    fields.sort_by_key(|(position, _)| *position);
    Ok(fields.into_iter().map(|(_, f)| f).collect())
}
