//! [`NormalizedStatement`]: the text `shardfusion_stat_statements` keeps for a statement, with
//! its literals replaced by `$1, $2, ...` as PostgreSQL's `pg_stat_statements` does.
//!
//! Statements that differ only in their literals normalize to the same text, so they share
//! one entry (keyed by [`NormalizedStatement::id`]), and no client sees another client's
//! values (passwords in an `INSERT` included). Normalization works on the parsed AST:
//!
//! - every literal (`Expr::Value`, the string of `DATE '...'`, option values of `COPY` and
//!   `CREATE EXTERNAL TABLE`) becomes the next `$n`;
//! - an `IN` list of literals only becomes `IN ($n /*, ... */)`, whatever its length, as
//!   PostgreSQL 18 squashes constant lists;
//! - a `VALUES` list keeps its first row, and the others become one `(...)`, so a bulk
//!   `INSERT` of any batch size is one entry.
//!
//! Cost: the statement is cloned before it is rewritten, but a top-level `INSERT ... VALUES`
//! (the usual 10 MB statement) lends only its first row to the clone, and the rest of the
//! rows never get copied or visited. The text is cut at [`MAX_QUERY_TEXT_BYTES`].
//!
//! Parsed statements are depth-bounded before they get here (`crate::statements::expression_depth`), so
//! the recursive visitor cannot overflow the stack.

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use sqlparser::ast::{
    Expr, Parens, Query, SetExpr, Statement, UnaryOperator, Value, ValueWithSpan, VisitMut,
    VisitorMut,
};

/// The longest normalized text kept, in bytes (longer text is cut on a character boundary
/// and ends with `...`). PostgreSQL's `track_activity_query_size` defaults to 1 kB; a little
/// more keeps most analytical queries whole.
pub const MAX_QUERY_TEXT_BYTES: usize = 4096;

/// What stands for the rows of a `VALUES` list after its first.
const MORE_ROWS: &str = "...";

/// A statement's normalized text and the hash that identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedStatement {
    /// Hash of the whole normalized text (before it is cut): equal for statements that
    /// differ only in literals.
    pub id: i64,
    /// The normalized text, at most [`MAX_QUERY_TEXT_BYTES`] long.
    pub text: String,
}

impl NormalizedStatement {
    /// Normalizes `statement`. It is borrowed mutably only to lend the rows of a large
    /// `VALUES` list out of the clone; it is left exactly as it was.
    pub fn of(statement: &mut DFStatement) -> Self {
        let mut copy = clone_without_values(statement);
        normalize(&mut copy);
        let text = copy.to_string();
        let id = xxhash_rust::xxh3::xxh3_64(text.as_bytes()) as i64;
        Self {
            id,
            text: truncate(text),
        }
    }
}

/// A copy of `statement`; a top-level `INSERT ... VALUES` of many rows is copied with its
/// first row only (and the `(...)` marker), without copying the other rows.
fn clone_without_values(statement: &mut DFStatement) -> DFStatement {
    let rows = match top_level_values(statement) {
        Some(values) if values.rows.len() > 1 => Some(std::mem::take(&mut values.rows)),
        _ => None,
    };
    let Some(rows) = rows else {
        return statement.clone();
    };
    if let Some(values) = top_level_values(statement) {
        values.rows = vec![rows[0].clone(), more_rows()];
    }
    let copy = statement.clone();
    if let Some(values) = top_level_values(statement) {
        values.rows = rows;
    }
    copy
}

fn top_level_values(statement: &mut DFStatement) -> Option<&mut sqlparser::ast::Values> {
    let statement = match statement {
        DFStatement::Explain(explain) => return top_level_values(&mut explain.statement),
        DFStatement::Statement(statement) => statement.as_mut(),
        _ => return None,
    };
    let Statement::Insert(insert) = statement else {
        return None;
    };
    match insert.source.as_deref_mut()?.body.as_mut() {
        SetExpr::Values(values) => Some(values),
        _ => None,
    }
}

fn more_rows() -> Parens<Vec<Expr>> {
    Parens::with_empty_span(vec![placeholder(MORE_ROWS.to_string())])
}

fn placeholder(text: String) -> Expr {
    Expr::Value(Value::Placeholder(text).with_empty_span())
}

/// Replaces every literal of `statement` by the next `$n`.
fn normalize(statement: &mut DFStatement) {
    let mut literals = Literals::default();
    normalize_with(statement, &mut literals);
}

fn normalize_with(statement: &mut DFStatement, literals: &mut Literals) {
    match statement {
        DFStatement::Statement(statement) => {
            let _ = statement.visit(literals);
        }
        DFStatement::Explain(explain) => normalize_with(&mut explain.statement, literals),
        DFStatement::CopyTo(copy) => {
            if let CopyToSource::Query(query) = &mut copy.source {
                let _ = query.visit(literals);
            }
            for (_, value) in &mut copy.options {
                *value = literals.next_value();
            }
        }
        DFStatement::CreateExternalTable(create) => {
            // Options may hold credentials (e.g. an object store's secret key).
            for (_, value) in &mut create.options {
                *value = literals.next_value();
            }
        }
        DFStatement::Reset(_) => {}
    }
}

/// Numbers the literals it replaces, in the order they appear.
#[derive(Default)]
struct Literals {
    count: usize,
}

impl Literals {
    fn next_value(&mut self) -> Value {
        self.count += 1;
        Value::Placeholder(format!("${}", self.count))
    }

    fn next(&mut self) -> ValueWithSpan {
        self.next_value().with_empty_span()
    }
}

impl VisitorMut for Literals {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Values(values) = query.body.as_mut()
            && values.rows.len() > 1
        {
            values.rows.truncate(1);
            values.rows.push(more_rows());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Value(value) if !matches!(value.value, Value::Placeholder(_)) => {
                *value = self.next();
            }
            Expr::TypedString(typed) => typed.value = self.next(),
            Expr::InList { list, .. } if list.len() > 1 && list.iter().all(is_literal) => {
                let first = self.next_value();
                *list = vec![placeholder(format!("{first} /*, ... */"))];
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Value(_) | Expr::TypedString(_) => true,
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => matches!(expr.as_ref(), Expr::Value(_)),
        _ => false,
    }
}

/// Cuts `text` to at most [`MAX_QUERY_TEXT_BYTES`], on a character boundary.
fn truncate(mut text: String) -> String {
    if text.len() <= MAX_QUERY_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_QUERY_TEXT_BYTES - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("...");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn parse(sql: &str) -> DFStatement {
        let mut statements = DFParser::parse_sql(sql).expect("valid SQL");
        statements.pop_front().expect("one statement")
    }

    fn normalized(sql: &str) -> String {
        NormalizedStatement::of(&mut parse(sql)).text
    }

    #[test]
    fn literals_become_numbered_placeholders() {
        assert_eq!(
            normalized("SELECT a, 'x' FROM t WHERE b = 42 AND c > DATE '2024-01-01' LIMIT 10"),
            "SELECT a, $1 FROM t WHERE b = $2 AND c > DATE $3 LIMIT $4"
        );
        assert_eq!(
            normalized("INSERT INTO users VALUES (1, 'hunter2')"),
            "INSERT INTO users VALUES ($1, $2)"
        );
    }

    #[test]
    fn statements_differing_in_literals_share_an_id() {
        let a = NormalizedStatement::of(&mut parse("SELECT * FROM t WHERE k = 1"));
        let b = NormalizedStatement::of(&mut parse("select * from t where k = 'two'"));
        let c = NormalizedStatement::of(&mut parse("SELECT * FROM t WHERE v = 1"));
        assert_eq!(a, b);
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn constant_lists_collapse() {
        let long = (0..10_000).map(|i| i.to_string()).collect::<Vec<_>>();
        let sql = format!(
            "SELECT * FROM t WHERE k IN ({}) AND v IN (1, -2)",
            long.join(", ")
        );
        assert_eq!(
            normalized(&sql),
            "SELECT * FROM t WHERE k IN ($1 /*, ... */) AND v IN ($2 /*, ... */)"
        );
        // A list with a column in it is not constant: kept.
        assert_eq!(
            normalized("SELECT * FROM t WHERE k IN (1, v)"),
            "SELECT * FROM t WHERE k IN ($1, v)"
        );
    }

    #[test]
    fn values_keep_their_first_row_and_the_statement_is_untouched() {
        let rows = (0..1000)
            .map(|i| format!("({i}, 'secret {i}')"))
            .collect::<Vec<_>>();
        let sql = format!("INSERT INTO t (k, v) VALUES {}", rows.join(", "));
        let mut statement = parse(&sql);
        let before = statement.clone();
        let one = NormalizedStatement::of(&mut statement);
        assert_eq!(one.text, "INSERT INTO t (k, v) VALUES ($1, $2), (...)");
        assert_eq!(statement, before, "normalizing must not change what runs");
        let two =
            NormalizedStatement::of(&mut parse("INSERT INTO t (k, v) VALUES (1, 'a'), (2, 'b')"));
        assert_eq!(one.id, two.id);
        // Nested VALUES lists are collapsed as well.
        assert_eq!(
            normalized("SELECT * FROM (VALUES (1), (2), (3)) AS v(x)"),
            "SELECT * FROM (VALUES ($1), (...)) AS v (x)"
        );
    }

    #[test]
    fn explain_and_copy_options_are_normalized() {
        assert_eq!(
            normalized("EXPLAIN SELECT * FROM t WHERE k = 5"),
            "EXPLAIN SELECT * FROM t WHERE k = $1"
        );
        let text = normalized(
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION 's3://b/x.csv' \
             OPTIONS ('aws.secret_access_key' 'very-secret')",
        );
        assert!(!text.contains("very-secret"), "{text}");
    }

    #[test]
    fn long_text_is_cut() {
        // Wide, not deep: the coordinator bounds depth before statements get here.
        let columns = (0..2_000)
            .map(|i| format!("k + {i} AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = normalized(&format!("SELECT {columns} FROM t"));
        assert!(text.len() <= MAX_QUERY_TEXT_BYTES, "{}", text.len());
        assert!(
            text.starts_with("SELECT k + $1 AS c0, k + $2 AS c1,"),
            "{text}"
        );
        assert!(text.ends_with("..."));
    }
}
