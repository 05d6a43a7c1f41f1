//! [`StatementShape`]: a query with the literals its filters compare columns against taken
//! out, so that statements differing only in those values share one cached plan
//! ([`crate::session::plan_cache`]).
//!
//! Only literals whose meaning does not depend on where they stand are taken out, and only
//! from filters — `WHERE`, `HAVING` and `JOIN ... ON`, in every subquery, CTE and set
//! operation — so no output column is named after a placeholder: a number or a quoted string
//! compared with a column (`col = 42`, `'x' < t.col`), a bound of `col BETWEEN a AND b`, and
//! the items of `col IN (a, b, ...)`. Anything else (the select list, `ORDER BY 1`,
//! `LIMIT 10`, function arguments, typed literals such as `DATE '...'`) stays in the text, so
//! it is part of the shape. Each value taken out becomes the next `$n`, whose type
//! DataFusion infers from the column it is compared with; the values are given back as
//! `ScalarValue`s parsed the way DataFusion's SQL planner parses literals.
//!
//! A statement that already holds placeholders has no shape (its values are not known here),
//! nor has one with more than [`MAX_VALUES`] values or a text longer than [`MAX_KEY_BYTES`].

use std::ops::ControlFlow;

use datafusion::common::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use sqlparser::ast::{
    BinaryOperator, Expr, JoinConstraint, JoinOperator, Query, SetExpr, Statement, TableFactor,
    TableWithJoins, Value, ValueWithSpan, VisitMut, Visitor, VisitorMut,
};

/// The most values a shape takes out. DataFusion's optimizer rewrites literal lists (a long
/// `x = 1 OR x = 2 OR ...` becomes one `IN` set); with placeholders it cannot, and the plan
/// would keep a chain as deep as the statement's. Statements with more values are planned
/// from their text.
pub const MAX_VALUES: usize = 64;

/// The longest statement text (with placeholders) that has a shape: the cache keeps each
/// shape's text and plan, so longer statements are planned from their text every time.
pub const MAX_KEY_BYTES: usize = 16 * 1024;

/// A query with its compared literals replaced by `$1, $2, ...`.
#[derive(Debug, Clone)]
pub struct StatementShape {
    /// The statement with placeholders.
    pub statement: DFStatement,
    /// Identifies the shape: the statement's text with placeholders, and which kind of
    /// literal (number or text) each placeholder stands for.
    pub key: String,
    /// The values taken out, in placeholder order.
    pub values: Vec<ScalarValue>,
}

/// What kind of literal a placeholder replaced: it decides which column types it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralKind {
    /// An integer (`Int64` or `UInt64`).
    Integer,
    /// A number with a fraction or an exponent (`Float64`).
    Float,
    Text,
}

impl StatementShape {
    /// The shape of `statement` if it is a plain query (`SELECT ...`) without placeholders;
    /// its literals other than the ones described in the module docs stay as they are.
    pub fn of(statement: &DFStatement) -> Option<Self> {
        let DFStatement::Statement(inner) = statement else {
            return None;
        };
        if !matches!(inner.as_ref(), Statement::Query(_)) || has_placeholders(inner) {
            return None;
        }
        let mut statement = statement.clone();
        let DFStatement::Statement(inner) = &mut statement else {
            return None;
        };
        let Statement::Query(query) = inner.as_mut() else {
            return None;
        };
        let mut extractor = Extractor::default();
        shape_query(query, &mut extractor);
        if extractor.values.len() > MAX_VALUES {
            return None;
        }
        let mut key = inner.to_string();
        if key.len() > MAX_KEY_BYTES {
            return None;
        }
        key.push_str(" -- ");
        key.extend(extractor.values.iter().map(|v| match Self::kind(v) {
            LiteralKind::Integer => 'i',
            LiteralKind::Float => 'f',
            LiteralKind::Text => 't',
        }));
        Some(Self {
            statement,
            key,
            values: extractor.values,
        })
    }

    /// The kind of literal each value was, in placeholder order.
    pub fn kind(value: &ScalarValue) -> LiteralKind {
        match value {
            ScalarValue::Utf8(_) => LiteralKind::Text,
            ScalarValue::Float64(_) => LiteralKind::Float,
            _ => LiteralKind::Integer,
        }
    }
}

/// Takes the compared literals out of the filters of `query` and of every query in it.
fn shape_query(query: &mut Query, extractor: &mut Extractor) {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            shape_query(&mut cte.query, extractor);
        }
    }
    shape_body(&mut query.body, extractor);
}

fn shape_body(body: &mut SetExpr, extractor: &mut Extractor) {
    match body {
        SetExpr::Select(select) => {
            for from in &mut select.from {
                shape_from(from, extractor);
            }
            for filter in [&mut select.selection, &mut select.having]
                .into_iter()
                .flatten()
            {
                shape_filter(filter, extractor);
            }
        }
        SetExpr::Query(query) => shape_query(query, extractor),
        SetExpr::SetOperation { left, right, .. } => {
            shape_body(left, extractor);
            shape_body(right, extractor);
        }
        _ => {}
    }
}

fn shape_from(from: &mut TableWithJoins, extractor: &mut Extractor) {
    shape_relation(&mut from.relation, extractor);
    for join in &mut from.joins {
        shape_relation(&mut join.relation, extractor);
        if let Some(JoinConstraint::On(on)) = join_constraint(&mut join.join_operator) {
            shape_filter(on, extractor);
        }
    }
}

fn shape_relation(relation: &mut TableFactor, extractor: &mut Extractor) {
    match relation {
        TableFactor::Derived { subquery, .. } => shape_query(subquery, extractor),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => shape_from(table_with_joins, extractor),
        _ => {}
    }
}

fn join_constraint(operator: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

/// Takes the compared literals out of one filter expression (subqueries in it included).
fn shape_filter(filter: &mut Expr, extractor: &mut Extractor) {
    let _always_continues = filter.visit(extractor);
}

fn has_placeholders(statement: &Statement) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Value(ValueWithSpan {
                    value: Value::Placeholder(_),
                    ..
                }) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    sqlparser::ast::Visit::visit(statement, &mut Finder).is_break()
}

/// Replaces compared literals by placeholders, collecting their values.
#[derive(Default)]
struct Extractor {
    values: Vec<ScalarValue>,
}

impl Extractor {
    /// Takes `expr` out if it is a literal this module shapes.
    fn take(&mut self, expr: &mut Expr) {
        let Some(value) = literal_value(expr) else {
            return;
        };
        self.values.push(value);
        *expr =
            Expr::Value(Value::Placeholder(format!("${}", self.values.len())).with_empty_span());
    }
}

impl VisitorMut for Extractor {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::BinaryOp { left, op, right } if is_comparison(op) => {
                if is_column(left) {
                    self.take(right);
                } else if is_column(right) {
                    self.take(left);
                }
            }
            Expr::Between {
                expr, low, high, ..
            } if is_column(expr) => {
                self.take(low);
                self.take(high);
            }
            Expr::InList { expr, list, .. } if is_column(expr) => {
                for item in list {
                    self.take(item);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

fn is_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

/// The value of a number or quoted-string literal, typed as DataFusion's SQL planner types
/// it (`Int64`, else `UInt64`, else `Float64`; `Utf8`); `None` for anything else, and for
/// numbers it would not read that way (underscores, out of `f64`'s range).
fn literal_value(expr: &Expr) -> Option<ScalarValue> {
    let Expr::Value(ValueWithSpan { value, .. }) = expr else {
        return None;
    };
    match value {
        Value::Number(text, _) if !text.contains('_') => {
            if let Ok(n) = text.parse::<i64>() {
                Some(ScalarValue::Int64(Some(n)))
            } else if let Ok(n) = text.parse::<u64>() {
                Some(ScalarValue::UInt64(Some(n)))
            } else {
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| ScalarValue::Float64(Some(f)))
            }
        }
        Value::SingleQuotedString(text) => Some(ScalarValue::Utf8(Some(text.clone()))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::parse;

    fn shape(sql: &str) -> Option<StatementShape> {
        StatementShape::of(&parse(sql).expect("valid SQL").remove(0))
    }

    #[test]
    fn compared_literals_become_placeholders() {
        let s = shape(
            "SELECT a, 'x', a = 3 FROM t JOIN u ON u.k = t.k AND u.v > 7 \
             WHERE k = 42 AND 'b' <= t.s GROUP BY 1 HAVING count(*) > 2 ORDER BY 1 LIMIT 10",
        )
        .expect("a shape");
        assert_eq!(
            s.key,
            "SELECT a, 'x', a = 3 FROM t JOIN u ON u.k = t.k AND u.v > $1 \
             WHERE k = $2 AND $3 <= t.s GROUP BY 1 HAVING count(*) > 2 ORDER BY 1 LIMIT 10 -- iit"
        );
        assert_eq!(
            s.values,
            vec![
                ScalarValue::Int64(Some(7)),
                ScalarValue::Int64(Some(42)),
                ScalarValue::Utf8(Some("b".into()))
            ]
        );
    }

    #[test]
    fn statements_differing_in_compared_values_share_a_key() {
        let a =
            shape("SELECT * FROM t WHERE k IN (1, 2) AND d BETWEEN 0.5 AND 7").expect("a shape");
        let b =
            shape("SELECT * FROM t WHERE k IN (3, 4) AND d BETWEEN 1.5 AND 9").expect("a shape");
        assert_eq!(a.key, b.key);
        assert_eq!(b.values.len(), 4);
        assert_eq!(b.values[2], ScalarValue::Float64(Some(1.5)));
        // A different number of IN items, or text instead of a number, is another shape.
        let c =
            shape("SELECT * FROM t WHERE k IN (3, 4, 5) AND d BETWEEN 1.5 AND 9").expect("a shape");
        assert_ne!(a.key, c.key);
        let d =
            shape("SELECT * FROM t WHERE k IN ('3', 4) AND d BETWEEN 1.5 AND 9").expect("a shape");
        assert_ne!(a.key, d.key);
    }

    #[test]
    fn long_value_lists_have_no_shape() {
        let ors = |n: usize| {
            (0..n)
                .map(|i| format!("x = {i}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        assert!(shape(&format!("SELECT * FROM t WHERE {}", ors(MAX_VALUES))).is_some());
        assert!(shape(&format!("SELECT * FROM t WHERE {}", ors(MAX_VALUES + 1))).is_none());
        let long = "x".repeat(MAX_KEY_BYTES);
        assert!(shape(&format!("SELECT '{long}' FROM t WHERE k = 1")).is_none());
        assert!(shape(&format!("SELECT a FROM t WHERE k = '{long}'")).is_some());
    }

    #[test]
    fn only_plain_queries_without_placeholders_have_a_shape() {
        assert!(shape("INSERT INTO t VALUES (1)").is_none());
        assert!(shape("EXPLAIN SELECT * FROM t WHERE k = 1").is_none());
        assert!(shape("SELECT * FROM t WHERE k = $1").is_none());
        // Literals outside filters, or not compared with a column, stay in the key; filters
        // of subqueries, CTEs and set operations are shaped too.
        let s = shape(
            "WITH c AS (SELECT * FROM u WHERE v = 1) SELECT * FROM (SELECT * FROM t WHERE k = 2) \
             AS d, c UNION ALL SELECT * FROM t WHERE k IN (SELECT k FROM u WHERE v < 3)",
        )
        .expect("a shape");
        assert_eq!(s.values.len(), 3, "{}", s.key);
        let s = shape("SELECT k + 1 FROM t WHERE f(k) = 3").expect("a shape");
        assert!(s.values.is_empty());
        assert!(
            s.key.contains("k + 1") && s.key.contains("f(k) = 3"),
            "{}",
            s.key
        );
    }
}
