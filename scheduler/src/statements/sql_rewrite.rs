//! Small rewrites that let PostgreSQL/Citus-flavoured SQL reach DataFusion.
//!
//! Citus users cast to Postgres types DataFusion does not know, e.g. `'primary'::noderole`
//! (from the Citus docs) or `'orders'::regclass`. Those types are all shown as text here, so
//! such casts become casts to `TEXT`. PostgreSQL's `ABORT` (the SQL parser has no such
//! statement) is read as the `ROLLBACK` it means ([`abort_as_rollback`]).

use std::borrow::Cow;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{DataType, Expr, Statement, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::statements::question_placeholders::byte_offset;

/// `sql` with each statement-leading `ABORT` written `ROLLBACK` (the rest of the text as
/// written; unchanged if it has none or does not tokenize).
pub fn abort_as_rollback(sql: &str) -> Cow<'_, str> {
    if !sql.to_ascii_lowercase().contains("abort") {
        return Cow::Borrowed(sql);
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return Cow::Borrowed(sql);
    };
    let mut starts = Vec::new();
    let mut previous: Option<&Token> = None;
    for token in &tokens {
        let leading = matches!(previous, None | Some(Token::SemiColon));
        if let Token::Word(word) = &token.token
            && leading
            && word.keyword == Keyword::ABORT
            && word.quote_style.is_none()
            && let Some(at) = byte_offset(sql, token.span.start.line, token.span.start.column)
        {
            starts.push(at);
        }
        if !matches!(token.token, Token::Whitespace(_)) {
            previous = Some(&token.token);
        }
    }
    if starts.is_empty() {
        return Cow::Borrowed(sql);
    }
    let mut text = String::with_capacity(sql.len() + 3 * starts.len());
    let mut copied = 0;
    for at in starts {
        text.push_str(&sql[copied..at]);
        text.push_str("ROLLBACK");
        copied = at + "ABORT".len();
    }
    text.push_str(&sql[copied..]);
    Cow::Owned(text)
}

/// Type names that are text in ShardFusion's metadata.
const TEXT_LIKE_TYPES: [&str; 6] = [
    "noderole",
    "regclass",
    "regtype",
    "name",
    "citus.distribution_type",
    "distribution_type",
];

/// Rewrites casts to Postgres text-like types into casts to `TEXT`, and casts to the types
/// stored as text (`jsonb`, `uuid`, `inet`, ...) into their input functions (`jsonb_in`:
/// checked, in canonical form, see `shardfusion_common::pg_types`).
pub fn rewrite_statement(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Cast {
            data_type,
            expr: inner,
            ..
        } = expr
            && let Some(pg_type) = crate::session::column_types::pg_type_of(data_type)
            && !matches!(
                pg_type,
                shardfusion_common::pg_types::PgType::VarChar(_)
                    | shardfusion_common::pg_types::PgType::Char(_)
            )
        {
            let call = format!("{}_in(CAST({inner} AS TEXT))", pg_type.sql_name());
            if let Ok(parsed) =
                datafusion::sql::sqlparser::parser::Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(&call)
                    .and_then(|mut p| p.parse_expr())
            {
                *expr = parsed;
                return ControlFlow::<()>::Continue(());
            }
        }
        if let Expr::Cast { data_type, .. } = expr {
            let text_like = match data_type {
                DataType::Regclass => true,
                DataType::Custom(name, _) => {
                    TEXT_LIKE_TYPES.contains(&name.to_string().to_ascii_lowercase().as_str())
                }
                _ => false,
            };
            if text_like {
                *data_type = DataType::Text;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_starting_a_statement_is_rollback() {
        assert_eq!(abort_as_rollback("abort"), "ROLLBACK");
        assert_eq!(
            abort_as_rollback("BEGIN; INSERT INTO t VALUES (1);\n  Abort WORK; SELECT 'abort'"),
            "BEGIN; INSERT INTO t VALUES (1);\n  ROLLBACK WORK; SELECT 'abort'"
        );
        assert_eq!(
            abort_as_rollback("SELECT abort FROM t"),
            "SELECT abort FROM t"
        );
    }
}
