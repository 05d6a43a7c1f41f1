//! [`StatementShape`]: a query with the literals it compares columns against taken out, so
//! that statements differing only in those values share one cached plan
//! ([`crate::session::plan_cache`]).
//!
//! Only literals whose meaning does not depend on where they stand are taken out: a number or
//! a quoted string compared with a column (`col = 42`, `'x' < t.col`), a bound of
//! `col BETWEEN a AND b`, and the items of `col IN (a, b, ...)`. Anything else (positions in
//! `ORDER BY 1`, `LIMIT 10`, function arguments, typed literals such as `DATE '...'`) stays
//! in the text, so it is part of the shape. Each value taken out becomes the next `$n`, whose
//! type DataFusion infers from the column it is compared with; the values are given back
//! as `ScalarValue`s parsed the way DataFusion's SQL planner parses literals.
//!
//! A statement that already holds placeholders has no shape (its values are not known here).

use std::ops::ControlFlow;

use datafusion::common::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use sqlparser::ast::{
    BinaryOperator, Expr, Statement, Value, ValueWithSpan, VisitMut, Visitor, VisitorMut,
};

/// The most values a shape takes out. DataFusion's optimizer rewrites literal lists (a long
/// `x = 1 OR x = 2 OR ...` becomes one `IN` set); with placeholders it cannot, and the plan
/// would keep a chain as deep as the statement's. Statements with more values are planned
/// from their text.
pub const MAX_VALUES: usize = 64;

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
    Number,
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
        let mut extractor = Extractor::default();
        if inner.visit(&mut extractor).is_break() || extractor.values.len() > MAX_VALUES {
            return None;
        }
        let mut key = inner.to_string();
        key.push_str(" -- ");
        key.extend(extractor.kinds.iter().map(|k| match k {
            LiteralKind::Number => 'n',
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
            _ => LiteralKind::Number,
        }
    }
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
    kinds: Vec<LiteralKind>,
}

impl Extractor {
    /// Takes `expr` out if it is a literal this module shapes.
    fn take(&mut self, expr: &mut Expr) {
        let Some(value) = literal_value(expr) else {
            return;
        };
        self.kinds.push(StatementShape::kind(&value));
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
        let s = shape("SELECT a, 'x' FROM t WHERE k = 42 AND 'b' <= t.s ORDER BY 1 LIMIT 10")
            .expect("a shape");
        assert_eq!(
            s.key,
            "SELECT a, 'x' FROM t WHERE k = $1 AND $2 <= t.s ORDER BY 1 LIMIT 10 -- nt"
        );
        assert_eq!(
            s.values,
            vec![
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
    }

    #[test]
    fn only_plain_queries_without_placeholders_have_a_shape() {
        assert!(shape("INSERT INTO t VALUES (1)").is_none());
        assert!(shape("EXPLAIN SELECT * FROM t WHERE k = 1").is_none());
        assert!(shape("SELECT * FROM t WHERE k = $1").is_none());
        // Literals that are not compared with a column stay in the key.
        let s = shape("SELECT k + 1 FROM t WHERE f(k) = 3").expect("a shape");
        assert!(s.values.is_empty());
        assert!(
            s.key.contains("k + 1") && s.key.contains("f(k) = 3"),
            "{}",
            s.key
        );
    }
}
