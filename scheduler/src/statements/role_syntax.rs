//! Parsing SQL text into statements, with PostgreSQL's role statements that `sqlparser`
//! reads in another dialect's grammar or not at all:
//! - `CREATE USER name [WITH] options` is `CREATE ROLE name [WITH] LOGIN options`;
//! - `ALTER USER` is `ALTER ROLE`;
//! - `GRANT role, ... TO member, ...` and `REVOKE role, ... FROM member, ...` (membership) come
//!   back as `GRANT ROLE role TO member` (a grant without objects).
//!
//! Everything else is parsed exactly as [`Parser::parse_statements`] does.

use datafusion::sql::sqlparser::ast::{
    Action, Grant, Grantee, GranteeName, GranteesType, ObjectName, Privileges, Revoke, Statement,
};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// The statements of `sql`.
pub fn parse_sql(dialect: &dyn Dialect, sql: &str) -> Result<Vec<Statement>, ParserError> {
    let mut parser = Parser::new(dialect).try_with_sql(sql)?;
    let mut statements = Vec::new();
    let mut expecting_delimiter = false;
    loop {
        while parser.consume_token(&Token::SemiColon) {
            expecting_delimiter = false;
        }
        if parser.peek_token_ref().token == Token::EOF {
            break;
        }
        if expecting_delimiter {
            return parser.expected("end of statement", parser.peek_token());
        }
        statements.push(parse_statement(&mut parser)?);
        expecting_delimiter = true;
    }
    Ok(statements)
}

fn parse_statement(parser: &mut Parser<'_>) -> Result<Statement, ParserError> {
    if parser.parse_keywords(&[Keyword::CREATE, Keyword::USER]) {
        let mut create = parser.parse_create_role()?;
        create.login.get_or_insert(true);
        return Ok(Statement::CreateRole(create));
    }
    if parser.parse_keywords(&[Keyword::ALTER, Keyword::USER]) {
        return parser.parse_alter_role();
    }
    if let Some(grant) = role_membership(parser)? {
        return Ok(grant);
    }
    parser.parse_statement()
}

/// `GRANT role, ... TO member, ...` or `REVOKE role, ... FROM member, ...`: a list of plain
/// names, then `TO`/`FROM`, with no `ON` (which would make it a grant of privileges).
fn role_membership(parser: &mut Parser<'_>) -> Result<Option<Statement>, ParserError> {
    let grant = match &parser.peek_token_ref().token {
        Token::Word(w) if w.keyword == Keyword::GRANT => true,
        Token::Word(w) if w.keyword == Keyword::REVOKE => false,
        _ => return Ok(None),
    };
    let link = if grant { Keyword::TO } else { Keyword::FROM };
    // Names and commas up to TO/FROM; a privilege keyword or anything else means it is not
    // a membership.
    let mut n = 1;
    loop {
        match &parser.peek_nth_token_ref(n).token {
            Token::Word(w) if w.keyword == link && n > 1 => break,
            Token::Word(w) if is_privilege(w.keyword) => return Ok(None),
            Token::Word(_) if n % 2 == 1 => {}
            Token::Comma if n % 2 == 0 => {}
            _ => return Ok(None),
        }
        n += 1;
    }
    parser.next_token();
    let roles = parser.parse_comma_separated(|p| p.parse_identifier())?;
    parser.expect_keyword_is(link)?;
    let members = parser.parse_comma_separated(|p| p.parse_identifier())?;
    let privileges = Privileges::Actions(
        roles
            .into_iter()
            .map(|role| Action::Role {
                role: ObjectName::from(vec![role]),
            })
            .collect(),
    );
    let grantees = members
        .into_iter()
        .map(|member| Grantee {
            grantee_type: GranteesType::None,
            name: Some(GranteeName::ObjectName(ObjectName::from(vec![member]))),
        })
        .collect();
    Ok(Some(if grant {
        Statement::Grant(Grant {
            privileges,
            objects: None,
            grantees,
            with_grant_option: false,
            as_grantor: None,
            granted_by: None,
            current_grants: None,
        })
    } else {
        Statement::Revoke(Revoke {
            privileges,
            objects: None,
            grantees,
            granted_by: None,
            cascade: None,
        })
    }))
}

/// Keywords that start a privilege list (`GRANT SELECT ...`, `GRANT ALL ...`).
fn is_privilege(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::SELECT
            | Keyword::INSERT
            | Keyword::UPDATE
            | Keyword::DELETE
            | Keyword::TRUNCATE
            | Keyword::REFERENCES
            | Keyword::TRIGGER
            | Keyword::ALL
            | Keyword::USAGE
            | Keyword::CREATE
            | Keyword::CONNECT
            | Keyword::TEMPORARY
            | Keyword::EXECUTE
            | Keyword::ROLE
            | Keyword::ON
    )
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    use super::*;

    fn parse(sql: &str) -> Vec<Statement> {
        parse_sql(&PostgreSqlDialect {}, sql).expect("parses")
    }

    /// The first statement of `sql`.
    fn first(sql: &str) -> Statement {
        parse(sql).swap_remove(0)
    }

    #[test]
    fn role_statements_parse_as_postgresql_means_them() {
        let Statement::CreateRole(create) = first("CREATE USER alice WITH PASSWORD 'x'") else {
            panic!("not CREATE ROLE")
        };
        assert_eq!(create.login, Some(true));
        let Statement::CreateRole(create) = first("CREATE ROLE readers") else {
            panic!("not CREATE ROLE")
        };
        assert_eq!(create.login, None);
        let Statement::CreateRole(create) = first("CREATE USER bob NOLOGIN") else {
            panic!("not CREATE ROLE")
        };
        assert_eq!(create.login, Some(false));
        assert!(matches!(
            first("ALTER USER alice WITH PASSWORD 'y'"),
            Statement::AlterRole { .. }
        ));
        let Statement::Grant(grant) = first("GRANT readers, writers TO alice, bob") else {
            panic!("not GRANT")
        };
        assert!(grant.objects.is_none());
        assert_eq!(grant.grantees.len(), 2);
        let Statement::Revoke(revoke) = first("REVOKE readers FROM alice") else {
            panic!("not REVOKE")
        };
        assert!(revoke.objects.is_none());
        // Privilege grants are parsed as usual.
        let Statement::Grant(grant) = first("GRANT SELECT ON t TO alice; SELECT 1") else {
            panic!("not GRANT")
        };
        assert!(grant.objects.is_some());
        assert_eq!(parse("SELECT 1; SELECT 2;").len(), 2);
        assert!(parse_sql(&PostgreSqlDialect {}, "SELECT 1 SELECT 2").is_err());
    }
}
