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
const BEFORE_A_VALUE: [Keyword; 28] = [
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
    Keyword::ESCAPE,
];

/// `sql` with its `?` placeholders numbered `$1`, `$2`, ... (unchanged if it has none, or
/// does not tokenize: the parser then says what is wrong). Only the placeholders' `?`
/// characters change; every other byte of the text stays as written.
pub fn number_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return Cow::Borrowed(sql);
    };
    // A text numbering its own placeholders is left as written.
    if tokens
        .iter()
        .any(|t| matches!(&t.token, Token::Placeholder(p) if p.starts_with('$')))
    {
        return Cow::Borrowed(sql);
    }
    let mut placeholders = Vec::new();
    let mut previous: Option<&Token> = None;
    for token in &tokens {
        if matches!(token.token, Token::Question) && expects_a_value(previous) {
            placeholders.push(token.span.start);
        }
        if !matches!(token.token, Token::Whitespace(_)) {
            previous = Some(&token.token);
        }
    }
    if placeholders.is_empty() {
        return Cow::Borrowed(sql);
    }
    let offsets: Vec<usize> = placeholders
        .iter()
        .filter_map(|at| byte_offset(sql, at.line, at.column))
        .collect();
    if offsets.len() != placeholders.len() || offsets.iter().any(|&i| sql.as_bytes()[i] != b'?') {
        return Cow::Borrowed(sql);
    }
    let mut text = String::with_capacity(sql.len() + 2 * offsets.len());
    let mut copied = 0;
    for (number, offset) in offsets.into_iter().enumerate() {
        text.push_str(&sql[copied..offset]);
        let _ = write!(text, "${}", number + 1);
        copied = offset + 1;
    }
    text.push_str(&sql[copied..]);
    Cow::Owned(text)
}

/// The byte offset of the character at `line` and `column` (both from 1, columns counted in
/// characters, as the tokenizer reports them).
pub(crate) fn byte_offset(sql: &str, line: u64, column: u64) -> Option<usize> {
    let line_start = if line <= 1 {
        0
    } else {
        sql.match_indices('\n')
            .nth(usize::try_from(line - 2).ok()?)
            .map(|(i, _)| i + 1)?
    };
    let column = usize::try_from(column.checked_sub(1)?).ok()?;
    sql[line_start..]
        .char_indices()
        .nth(column)
        .map(|(i, _)| line_start + i)
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
    fn placeholders_on_later_lines_and_after_wide_characters() {
        assert_eq!(
            number_placeholders("SELECT 'ü€', ?\nFROM t\nWHERE a = ? AND b = 'ß?'"),
            "SELECT 'ü€', $1\nFROM t\nWHERE a = $2 AND b = 'ß?'"
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
        // Quotes and escapes inside literals and names come back exactly as written.
        assert_eq!(
            number_placeholders(
                "SELECT 'O''Brien', E'a\\'b', \"a\"\"b\" FROM t WHERE x = 'x'' OR ''1''=''1' AND id = ?"
            ),
            "SELECT 'O''Brien', E'a\\'b', \"a\"\"b\" FROM t WHERE x = 'x'' OR ''1''=''1' AND id = $1"
        );
        // A text with its own numbered placeholders is left alone.
        assert_eq!(number_placeholders("SELECT $1, ?"), "SELECT $1, ?");
        assert_eq!(
            number_placeholders("SELECT * FROM t WHERE name LIKE ? ESCAPE ?"),
            "SELECT * FROM t WHERE name LIKE $1 ESCAPE $2"
        );
    }
}
