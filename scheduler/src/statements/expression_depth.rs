//! Bounding how deeply a statement's expressions nest, so that no input can overflow a stack.
//!
//! sqlparser builds operator chains (`a OR b OR ...`, `1 + 1 + ...`, `x::int::int`) in a loop,
//! so a chain of n operators parses, without deep recursion, into a tree n levels deep. Every
//! later walk of that tree recurses once per level: our rewrites, DataFusion's planner,
//! physical expression evaluation, datafusion-proto (on the coordinator and on the workers),
//! even `Drop`. With a 10,000-term chain, a 2 MiB thread stack overflowed and the process
//! aborted. So, in order:
//!
//! 1. [`nesting_bound`] scans the text (linear, no parsing) for an upper bound on the depth
//!    it can produce. Text beyond [`MAX_TEXT_NESTING`] is refused before it is parsed.
//! 2. Text whose bound exceeds [`INLINE_NESTING`] is parsed on a thread of its own whose stack
//!    is sized for the bound ([`on_stack_for`]), so that even dropping a refused tree is safe.
//! 3. [`bound_statement`] rebuilds AND/OR chains as balanced trees (both are associative in
//!    SQL's three-valued logic, and SQL fixes no evaluation order), so 10,000 ORed equalities
//!    become 14 levels, and then refuses anything still deeper than [`MAX_EXPRESSION_DEPTH`]
//!    with SQLSTATE 54001 (`statement_too_complex`), as PostgreSQL does past its stack depth;
//!    so are `IN` lists longer than [`MAX_IN_LIST`] values, whose planning cost grows with
//!    every copy DataFusion makes of them (a 1.3M-value list took 120 s and 4.5 GB).
//!
//! Everything after parsing therefore sees at most [`MAX_EXPRESSION_DEPTH`] levels. The
//! coordinator parses and plans on [`crate::statements::runtime`]'s large stacks; workers decode
//! fragments on a large stack too (tested in `tests/tests/integration/deep_expressions.rs`).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Value, VisitMut, VisitorMut};

use crate::error::{Result, SchedulerError};

/// The deepest expression a statement may hold once AND/OR chains are balanced.
pub const MAX_EXPRESSION_DEPTH: usize = 1_500;

/// Text that could nest deeper than this is refused without being parsed.
pub const MAX_TEXT_NESTING: usize = 200_000;

/// Text bounded by this much nesting is parsed on the caller's own stack.
pub const INLINE_NESTING: usize = 1_000;

/// Stack reserved per level of possible nesting when parsing on a thread of its own: enough
/// for the recursive `Drop` of a refused tree in a debug build, with room to spare.
const STACK_BYTES_PER_LEVEL: usize = 2 * 1024;
const STACK_BASE_BYTES: usize = 16 * 1024 * 1024;

/// The error for input that nests too deeply.
pub fn too_deep(detail: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::TooComplex {
        message: format!(
            "statement too complex: {detail}. ShardFusion accepts expressions up to \
             {MAX_EXPRESSION_DEPTH} levels deep; each operator in a chain such as `1 + 1 + ...` \
             or `a || b || ...` adds a level (AND/OR chains of any length are fine). Split the \
             expression, or use IN (...) or arrays instead of long chains"
        ),
    }
}

/// An upper bound on how deeply the expressions of `sql` can nest: at every point, the
/// operators seen so far at each enclosing bracket level (a comma starts a new sibling), plus
/// the brackets themselves. Strings, quoted identifiers and comments are skipped.
pub fn nesting_bound(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    // Operators counted at each open bracket level; index 0 is the top level.
    let mut levels: Vec<usize> = vec![0];
    let mut total = 0usize;
    let mut max = 0usize;
    let mut i = 0;
    let count = |levels: &mut Vec<usize>, total: &mut usize, max: &mut usize| {
        if let Some(top) = levels.last_mut() {
            *top += 1;
        }
        *total += 1;
        *max = (*max).max(*total + levels.len());
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' => {
                let escapes = i > 0 && matches!(bytes[i - 1], b'e' | b'E');
                i = skip_quoted(bytes, i, b'\'', escapes);
                continue;
            }
            b'"' => {
                i = skip_quoted(bytes, i, b'"', false);
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(bytes, i);
                continue;
            }
            b'$' => {
                i = skip_dollar_quoted(bytes, i);
                continue;
            }
            b'(' | b'[' => {
                levels.push(0);
                max = max.max(total + levels.len());
            }
            b')' | b']' => {
                if levels.len() > 1
                    && let Some(done) = levels.pop()
                {
                    total -= done;
                }
            }
            b',' | b';' => {
                if let Some(top) = levels.last_mut() {
                    total -= *top;
                    *top = 0;
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'=' | b'!' | b'~' | b'&'
            | b'|' | b'#' | b'@' | b':' | b'?' => {
                // A run of operator characters (`<=`, `::`, `->>`, `||`) is one operator.
                while i + 1 < bytes.len() && is_operator_char(bytes[i + 1]) {
                    i += 1;
                }
                count(&mut levels, &mut total, &mut max);
            }
            _ if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if is_operator_word(&bytes[start..i]) {
                    count(&mut levels, &mut total, &mut max);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    max
}

fn is_operator_char(b: u8) -> bool {
    matches!(
        b,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'^'
            | b'<'
            | b'>'
            | b'='
            | b'!'
            | b'~'
            | b'&'
            | b'|'
            | b'#'
            | b'@'
            | b':'
            | b'?'
    )
}

/// Keywords that continue an expression chain (or, like NOT, nest one).
fn is_operator_word(word: &[u8]) -> bool {
    const WORDS: [&str; 16] = [
        "and", "or", "not", "is", "like", "ilike", "in", "between", "similar", "collate", "at",
        "overlaps", "xor", "div", "regexp", "rlike",
    ];
    word.len() <= 8
        && WORDS
            .iter()
            .any(|w| w.as_bytes().eq_ignore_ascii_case(word))
}

/// The index just past the quoted text starting at `start` (a doubled quote continues it).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if backslash_escapes && bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The index just past a (possibly nested, as in PostgreSQL) block comment.
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        if bytes[i] == b'/' && bytes[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The index past a `$tag$ ... $tag$` string starting at `start`, or past the `$` if it does
/// not open one (a `$1` placeholder).
fn skip_dollar_quoted(bytes: &[u8], start: usize) -> usize {
    let mut end = start + 1;
    while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
        end += 1;
    }
    if bytes.get(end) != Some(&b'$')
        || bytes[start + 1..end]
            .first()
            .is_some_and(u8::is_ascii_digit)
    {
        return start + 1;
    }
    let tag = &bytes[start..=end];
    let body = end + 1;
    bytes[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(bytes.len(), |p| body + p + tag.len())
}

/// Runs `work` where the stack is large enough for text nesting up to `bound` levels: inline
/// when the bound is small, else on a thread whose stack is sized for it.
pub fn on_stack_for<T: Send>(bound: usize, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if bound <= INLINE_NESTING {
        return work();
    }
    let stack = STACK_BASE_BYTES + bound * STACK_BYTES_PER_LEVEL;
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("shardfusion-parse".into())
            .stack_size(stack)
            .spawn_scoped(scope, work)
            .map_err(|e| SchedulerError::invalid(format!("cannot start a parser thread: {e}")))?;
        handle.join().unwrap_or_else(|_| {
            Err(SchedulerError::invalid(
                "the statement could not be parsed (the parser failed unexpectedly)",
            ))
        })
    })
}

/// Balances the AND/OR chains of `statement`, then refuses it if an expression is still
/// deeper than [`MAX_EXPRESSION_DEPTH`]. Recurses at most that deep itself.
pub fn bound_statement<T: VisitMut + ?Sized>(statement: &mut T) -> Result<()> {
    let mut visitor = DepthBound {
        depth: 0,
        max: MAX_EXPRESSION_DEPTH,
    };
    match statement.visit(&mut visitor) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(Refusal::TooDeep) => Err(too_deep(format!(
            "an expression nests more than {MAX_EXPRESSION_DEPTH} levels deep"
        ))),
        ControlFlow::Break(Refusal::LongInList(len)) => Err(SchedulerError::TooComplex {
            message: format!(
                "statement too complex: an IN list has {len} elements; ShardFusion accepts up \
                 to {MAX_IN_LIST} (planning copies every element several times). Load the \
                 values into a table (e.g. with bulk ingest) and join or use IN (SELECT ...)"
            ),
        }),
    }
}

/// The longest `IN (...)` list of values a statement may hold.
pub const MAX_IN_LIST: usize = 100_000;

/// Why [`DepthBound`] stopped.
enum Refusal {
    TooDeep,
    LongInList(usize),
}

/// Balances AND/OR chains on the way down and stops past `max` levels or at an overlong
/// `IN` list.
struct DepthBound {
    depth: usize,
    max: usize,
}

impl VisitorMut for DepthBound {
    type Break = Refusal;

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Refusal> {
        balance_logical_chain(expr);
        if let Expr::InList { list, .. } = expr
            && list.len() > MAX_IN_LIST
        {
            return ControlFlow::Break(Refusal::LongInList(list.len()));
        }
        self.depth += 1;
        if self.depth > self.max {
            ControlFlow::Break(Refusal::TooDeep)
        } else {
            ControlFlow::Continue(())
        }
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<Refusal> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// If `expr` is an AND or OR whose operands continue the same chain, rebuilds the chain as a
/// balanced tree (without recursing along it).
fn balance_logical_chain(expr: &mut Expr) {
    let Expr::BinaryOp { left, op, right } = expr else {
        return;
    };
    if !matches!(op, BinaryOperator::And | BinaryOperator::Or) {
        return;
    }
    let continues = |e: &Expr| matches!(e, Expr::BinaryOp { op: inner, .. } if inner == op);
    if !continues(left) && !continues(right) {
        return;
    }
    let op = op.clone();
    let chain = std::mem::replace(expr, Expr::value(Value::Null));
    let mut operands = Vec::new();
    let mut pending = vec![chain];
    while let Some(next) = pending.pop() {
        match next {
            Expr::BinaryOp {
                left,
                op: inner,
                right,
            } if inner == op => {
                pending.push(*right);
                pending.push(*left);
            }
            operand => operands.push(operand),
        }
    }
    *expr = balanced(operands, &op);
}

/// `operands` joined by `op` as a tree of depth ⌈log₂ n⌉, in their original order.
fn balanced(mut operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
    if operands.len() == 1 {
        return operands.pop().unwrap_or_else(|| Expr::value(Value::Null));
    }
    let right = operands.split_off(operands.len() / 2);
    Expr::BinaryOp {
        left: Box::new(balanced(operands, op)),
        op: op.clone(),
        right: Box::new(balanced(right, op)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse_one(sql: &str) -> Statement {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        statements.pop().expect("one statement")
    }

    #[test]
    fn bounds_cover_chains_and_ignore_quoted_text() {
        assert!(nesting_bound("SELECT 1") < 5);
        let chain = format!("SELECT {}1", "1 + ".repeat(5000));
        assert!(nesting_bound(&chain) >= 5000);
        let quoted = format!("SELECT '{}' AS s -- {}", "+".repeat(5000), "+".repeat(5000));
        assert!(nesting_bound(&quoted) < 5);
        let dollar = format!("SELECT $x${}$x$, $1", "+-".repeat(5000));
        assert!(nesting_bound(&dollar) < 5);
        // Siblings separated by commas do not add up; nested brackets do.
        let rows = format!("VALUES {}(1 + 1)", "(1 + 1), ".repeat(10_000));
        assert!(nesting_bound(&rows) < 5);
        assert!(nesting_bound("SELECT ((1 + (2 + (3 + 4))))") >= 7);
    }

    #[test]
    fn or_chains_become_shallow_and_keep_their_terms() {
        let terms: Vec<String> = (0..10_000).map(|i| format!("x = {i}")).collect();
        let sql = format!("SELECT * FROM t WHERE {}", terms.join(" OR "));
        let mut statement = on_stack_for(nesting_bound(&sql), || Ok(parse_one(&sql)))
            .expect("parses on a large stack");
        bound_statement(&mut statement).expect("balanced chains are accepted");
        let text = statement.to_string();
        assert!(text.contains("x = 0 OR x = 1"));
        assert!(text.contains("x = 9998 OR x = 9999"));
        assert_eq!(text.matches(" OR ").count(), 9_999);
    }

    #[test]
    fn deep_arithmetic_is_refused_with_54001() {
        let sql = format!("SELECT {}1", "1 + ".repeat(50_000));
        let result = on_stack_for(nesting_bound(&sql), || {
            let mut statement = parse_one(&sql);
            bound_statement(&mut statement)
        });
        let status = tonic::Status::from(result.expect_err("too deep"));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("too complex"),
            "{}",
            status.message()
        );
    }
}
