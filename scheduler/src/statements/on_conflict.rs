//! `INSERT ... ON CONFLICT [(columns) | ON CONSTRAINT name] DO NOTHING`: rewritten, before
//! planning, into an `INSERT` of the rows that meet no stored row with the same key and are
//! the first of their key in the statement:
//!
//! ```sql
//! INSERT INTO t (c...) SELECT DISTINCT ON (k...) * FROM (<rows>) AS excluded (c...)
//! WHERE NOT EXISTS (SELECT 1 FROM t AS stored WHERE stored.k1 = excluded.k1 AND ...)
//! ```
//!
//! for the conflict target's key (every key of the table when none is named). The keys a
//! statement leaves to their defaults (a `bigserial` left out) take fresh values and are
//! not looked up. The write is then checked like any other ([`crate::write::unique_keys`]):
//! a row that a concurrent statement committed after this one's snapshot fails with 23505
//! where PostgreSQL would skip it. `DO UPDATE` is refused for now.

use datafusion::sql::sqlparser::ast::{
    ConflictTarget, Ident, Insert, OnConflictAction, OnInsert, Query, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_catalog::unique_key_store::UniqueKey;

use crate::error::{Result, SchedulerError};
use crate::session::foreign_keys::normalized;

/// Rewrites `insert` if it has `ON CONFLICT ... DO NOTHING` (see the module docs).
pub fn rewrite_do_nothing(insert: &mut Insert, snapshot: &CatalogSnapshot) -> Result<()> {
    let Some(on) = insert.on.take() else {
        return Ok(());
    };
    let OnInsert::OnConflict(conflict) = on else {
        return Err(SchedulerError::unsupported(
            "ON DUPLICATE KEY UPDATE; write INSERT ... ON CONFLICT (key) DO NOTHING",
        ));
    };
    if matches!(conflict.action, OnConflictAction::DoUpdate(_)) {
        return Err(SchedulerError::unsupported(
            "INSERT ... ON CONFLICT ... DO UPDATE; run the UPDATE and an INSERT ... ON CONFLICT \
             DO NOTHING in one transaction",
        ));
    }
    let table =
        crate::statements::table_references::insert_target(insert, snapshot, "ON CONFLICT")?;
    let table_name = table.name.clone();
    let keys: Vec<&UniqueKey> = match &conflict.conflict_target {
        None => table.unique_keys.iter().collect(),
        Some(ConflictTarget::Columns(columns)) => {
            let mut wanted: Vec<String> = columns.iter().map(normalized).collect();
            wanted.sort();
            let key = table.unique_keys.iter().find(|k| {
                let mut have = k.columns.clone();
                have.sort();
                have == wanted
            });
            vec![key.ok_or_else(|| {
                SchedulerError::invalid(format!(
                    "there is no unique or exclusion constraint matching the ON CONFLICT \
                     specification ({}) of table \"{table_name}\"",
                    wanted.join(", ")
                ))
            })?]
        }
        Some(ConflictTarget::OnConstraint(constraint)) => {
            let wanted = constraint
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(normalized)
                .unwrap_or_default();
            let key = table.unique_keys.iter().find(|k| k.name == wanted);
            vec![key.ok_or_else(|| {
                SchedulerError::invalid(format!(
                    "constraint \"{wanted}\" for table \"{table_name}\" does not exist"
                ))
            })?]
        }
    };
    let columns: Vec<String> = if insert.columns.is_empty() {
        (table.schema.fields().iter())
            .map(|f| f.name().clone())
            .collect()
    } else {
        (insert.columns.iter())
            .map(|c| {
                c.0.last()
                    .and_then(|p| p.as_ident())
                    .map_or_else(|| c.to_string(), normalized)
            })
            .collect()
    };
    // Keys the statement gives all columns of; the others take fresh defaults.
    let keys: Vec<&UniqueKey> = keys
        .into_iter()
        .filter(|k| k.columns.iter().all(|c| columns.contains(c)))
        .collect();
    let Some(source) = insert.source.as_ref() else {
        return Ok(());
    };
    if keys.is_empty() {
        return Ok(());
    }
    let quoted = |c: &str| Ident::with_quote('"', c).to_string();
    let listed: Vec<String> = columns.iter().map(|c| quoted(c)).collect();
    let absent: Vec<String> = keys
        .iter()
        .map(|key| {
            let same: Vec<String> = (key.columns.iter())
                .map(|c| format!("stored.{0} = excluded.{0}", quoted(c)))
                .collect();
            format!(
                "NOT EXISTS (SELECT 1 FROM {} AS stored WHERE {})",
                quoted(&table_name),
                same.join(" AND ")
            )
        })
        .collect();
    let first: Vec<String> = keys[0].columns.iter().map(|c| quoted(c)).collect();
    let sql = format!(
        "SELECT DISTINCT ON ({}) * FROM ({source}) AS excluded ({}) WHERE {}",
        first.join(", "),
        listed.join(", "),
        absent.join(" AND ")
    );
    let rewritten = parse_query(&sql)?;
    insert.source = Some(Box::new(rewritten));
    if insert.columns.is_empty() {
        insert.columns = columns
            .iter()
            .map(|c| Ident::with_quote('"', c.as_str()).into())
            .collect();
    }
    Ok(())
}

fn parse_query(sql: &str) -> Result<Query> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| SchedulerError::invalid(format!("ON CONFLICT rewrite: {e}")))?;
    match statements.into_iter().next() {
        Some(Statement::Query(query)) => Ok(*query),
        _ => Err(SchedulerError::invalid("ON CONFLICT rewrite: not a query")),
    }
}
