//! JDBC-style `?` placeholders, numbered as PostgreSQL's `$1`, `$2`, ...
//!
//! The Flight SQL JDBC driver (and ODBC) prepare statements with `?` for each parameter;
//! PostgreSQL's grammar, which statements are parsed in, reads `?` as the JSONB
//! "key exists" operator. A `?` where a value is expected — at the start, after an
//! operator, `(`, `,`, or a keyword that a value follows (`WHERE`, `AND`, `VALUES`, `LIMIT`,
//! `THEN`, ...) — is a placeholder and becomes the next `$n`; a `?` after a value (a column,
//! a literal, `)`) stays the operator. `?` inside strings, quoted names and comments is left
//! alone: the text is tokenized, not searched.

use std::borrow::Cow;
use std::fmt::Write as _;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Keywords a value may follow directly.
const BEFORE_A_VALUE: [Keyword; 27] = [
    Keyword::SELECT,
    Keyword::WHERE,
    Keyword::AND,
    Keyword::OR,
    Keyword::NOT,
    Keyword::ON,
    Keyword::WHEN,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::CASE,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::IN,
    Keyword::BETWEEN,
    Keyword::LIKE,
    Keyword::ILIKE,
    Keyword::IS,
    Keyword::HAVING,
    Keyword::VALUES,
    Keyword::SET,
    Keyword::DISTINCT,
    Keyword::ALL,
    Keyword::ANY,
    Keyword::SOME,
    Keyword::RETURNING,
    Keyword::BY,
    Keyword::FETCH,
];

/// `sql` with its `?` placeholders numbered `$1`, `$2`, ... (unchanged if it has none, or
/// does not tokenize: the parser then says what is wrong).
pub fn number_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return Cow::Borrowed(sql);
    };
    let mut text = String::with_capacity(sql.len() + 8);
    let mut numbered = 0;
    let mut previous: Option<&Token> = None;
    for token in &tokens {
        if matches!(token, Token::Question) && expects_a_value(previous) {
            numbered += 1;
            let _ = write!(text, "${numbered}");
        } else {
            let _ = write!(text, "{token}");
        }
        if !matches!(token, Token::Whitespace(_)) {
            previous = Some(token);
        }
    }
    if numbered == 0 {
        Cow::Borrowed(sql)
    } else {
        Cow::Owned(text)
    }
}

/// Whether a value (rather than an operator) comes after `previous`.
fn expects_a_value(previous: Option<&Token>) -> bool {
    match previous {
        None => true,
        Some(Token::Word(word)) => {
            word.quote_style.is_none() && BEFORE_A_VALUE.contains(&word.keyword)
        }
        Some(
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_)
            | Token::RParen
            | Token::RBracket,
        ) => false,
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_where_values_go_are_numbered() {
        assert_eq!(
            number_placeholders("SELECT * FROM t WHERE id = ? AND name <> ?"),
            "SELECT * FROM t WHERE id = $1 AND name <> $2"
        );
        assert_eq!(
            number_placeholders("INSERT INTO t VALUES (?, ?, 'x')"),
            "INSERT INTO t VALUES ($1, $2, 'x')"
        );
        assert_eq!(
            number_placeholders("SELECT ? LIMIT ?"),
            "SELECT $1 LIMIT $2"
        );
        assert_eq!(
            number_placeholders("SELECT * FROM t WHERE k IN (?,?) OR k BETWEEN ? AND ?"),
            "SELECT * FROM t WHERE k IN ($1,$2) OR k BETWEEN $3 AND $4"
        );
    }

    #[test]
    fn other_question_marks_stay() {
        for sql in [
            "SELECT '?' FROM t",
            "SELECT \"what?\" FROM t",
            "SELECT 1 -- why?\n",
            "SELECT data ? 'key' FROM t",
            "SELECT (a) ? 'key' FROM t",
            "SELECT $1",
        ] {
            assert_eq!(number_placeholders(sql), sql, "{sql}");
        }
        assert_eq!(
            number_placeholders("SELECT '?', data ? 'k' FROM t WHERE id = ?"),
            "SELECT '?', data ? 'k' FROM t WHERE id = $1"
        );
    }
}
