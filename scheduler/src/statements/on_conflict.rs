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
//! where PostgreSQL would skip it.
//!
//! `DO UPDATE SET ... [WHERE ...]` ([`take_do_update`]) first updates the stored rows the
//! proposed rows meet on the key, as `UPDATE ... FROM (<rows>) AS excluded` would
//! ([`crate::write::matched_rows`]; a stored row met twice fails with 21000, as in
//! PostgreSQL), then inserts the others as above, in one transaction. The proposed rows are
//! computed once for each half: a volatile function in them (`random()`) may give each half
//! other values.

use datafusion::sql::sqlparser::ast::{
    ConflictTarget, Ident, Insert, OnConflictAction, OnInsert, Query, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use shardfusion_catalog::unique_key_store::UniqueKey;
use shardfusion_catalog::{CatalogSnapshot, TableMeta};

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::ScalarValue;

use crate::auth::Access;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::limits::statement_control::StatementControl;
use crate::session::column_defaults;
use crate::session::foreign_keys::normalized;
use crate::session::statement_context::session_for;
use crate::session::{transaction, transaction_block};
use crate::statements::insert_returning::Returning;
use crate::statements::query::{query_rows, sharing_parameters};
use crate::write::matched_rows;
use crate::write::matched_rows::{MatchedChange, SecondMatch};

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
    let table =
        crate::statements::table_references::insert_target(insert, snapshot, "ON CONFLICT")?;
    let table_name = table.name.clone();
    let keys = conflict_keys(&table, conflict.conflict_target.as_ref())?;
    let columns = listed_columns(insert, &table);
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

/// The keys `target` names on `table` (every key of the table when it names none).
fn conflict_keys<'a>(
    table: &'a TableMeta,
    target: Option<&ConflictTarget>,
) -> Result<Vec<&'a UniqueKey>> {
    let table_name = &table.name;
    Ok(match target {
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
    })
}

/// The columns `insert` gives values for, in its order (all of the table's when it lists none).
fn listed_columns(insert: &Insert, table: &TableMeta) -> Vec<String> {
    if insert.columns.is_empty() {
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
    }
}

/// An `INSERT ... ON CONFLICT (key) DO UPDATE`, split in two: the update of the stored rows
/// that the proposed rows meet, then the `INSERT` of the others (left in the statement as
/// `ON CONFLICT (key) DO NOTHING`). Both run in one transaction.
pub struct Upsert {
    pub update: MatchedChange,
    /// A query giving a row if the proposed rows hold a key twice.
    pub repeated_keys: String,
}

/// Splits `insert` if it has `ON CONFLICT ... DO UPDATE`: the update of the rows it meets is
/// returned (`UPDATE t SET ... FROM (<rows>) AS excluded (c...) WHERE t.k = excluded.k [AND
/// <condition>]`, each stored row changed at most once), and `insert` is left with `DO
/// NOTHING`. `returning` is the statement's `RETURNING` list, which the updated rows give too.
pub fn take_do_update(
    insert: &mut Insert,
    snapshot: &CatalogSnapshot,
    returning: Option<Returning>,
) -> Result<Option<Upsert>> {
    let Some(OnInsert::OnConflict(conflict)) = &mut insert.on else {
        return Ok(None);
    };
    let OnConflictAction::DoUpdate(action) = &conflict.action else {
        return Ok(None);
    };
    let action = action.clone();
    let Some(target) = conflict.conflict_target.clone() else {
        return Err(SchedulerError::Syntax {
            message: "ON CONFLICT DO UPDATE requires inference specification or constraint \
                      name: write ON CONFLICT (key columns) DO UPDATE"
                .to_string(),
        });
    };
    conflict.action = OnConflictAction::DoNothing;
    let table =
        crate::statements::table_references::insert_target(insert, snapshot, "ON CONFLICT")?;
    let [key] = conflict_keys(&table, Some(&target))?[..] else {
        return Err(SchedulerError::invalid("ON CONFLICT names one key"));
    };
    let columns = listed_columns(insert, &table);
    let Some(source) = insert.source.as_ref() else {
        return Ok(None);
    };
    // A key the statement leaves to its default takes a fresh value: it meets no stored row.
    if !key.columns.iter().all(|c| columns.contains(c)) {
        return Ok(None);
    }
    let qualifier = insert
        .table_alias
        .as_ref()
        .map_or_else(|| table.name.clone(), |a| normalized(&a.alias));
    let quoted = |c: &str| Ident::with_quote('"', c).to_string();
    let listed: Vec<String> = columns.iter().map(|c| quoted(c)).collect();
    // The proposed rows, with the defaults of the columns the statement leaves out.
    let mut proposed: Vec<String> = Vec::with_capacity(table.schema.fields().len());
    for field in table.schema.fields() {
        let name = quoted(field.name());
        if columns.contains(field.name()) {
            proposed.push(format!("\"__sf_proposed\".{name}"));
        } else {
            let default = column_defaults::default_of(&table, field.name())?;
            proposed.push(format!("({default}) AS {name}"));
        }
    }
    let excluded = format!(
        "(SELECT {} FROM ({source}) AS \"__sf_proposed\" ({})) AS excluded",
        proposed.join(", "),
        listed.join(", ")
    );
    let key_columns: Vec<String> = key.columns.iter().map(|c| quoted(c)).collect();
    let repeated_keys = format!(
        "SELECT 1 FROM ({source}) AS excluded ({}) GROUP BY {} HAVING count(*) > 1 LIMIT 1",
        listed.join(", "),
        key_columns.join(", ")
    );
    let mut selection: Vec<String> = (key.columns.iter())
        .map(|c| format!("{}.{1} = excluded.{1}", quoted(&qualifier), quoted(c)))
        .collect();
    if let Some(condition) = &action.selection {
        selection.push(format!("({condition})"));
    }
    let set = (crate::write::row_changes::assignments(&table, &action.assignments)?)
        .into_iter()
        .map(|(index, value)| (index, value.to_string()))
        .collect();
    let update = MatchedChange {
        returning,
        from: vec![excluded],
        selection: Some(selection.join(" AND ")),
        set,
        delete: false,
        second_match: SecondMatch::Refuse,
        params: Vec::new(),
        qualifier,
        table,
    };
    Ok(Some(Upsert {
        update,
        repeated_keys,
    }))
}

fn parse_query(sql: &str) -> Result<Query> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| SchedulerError::invalid(format!("ON CONFLICT rewrite: {e}")))?;
    match statements.into_iter().next() {
        Some(Statement::Query(query)) => Ok(*query),
        _ => Err(SchedulerError::invalid("ON CONFLICT rewrite: not a query")),
    }
}

/// Runs `upsert`'s update, then `insert` (its `INSERT` half), in the statement's transaction or
/// in one of their own; the result adds up both (their counts, or their `RETURNING` rows).
pub async fn upsert(
    coordinator: &Coordinator,
    access: &Access<'_>,
    control: &StatementControl,
    params: &[ScalarValue],
    upsert: Upsert,
    insert: impl Future<Output = Result<StatementOutput>>,
) -> Result<StatementOutput> {
    let mut update = upsert.update;
    update.params = params.to_vec();
    let both = sharing_parameters(async {
        let cluster = coordinator.cluster();
        let session = session_for(cluster, transaction::statement_snapshot(cluster)?)?;
        let (_, repeated) =
            query_rows(&session, &upsert.repeated_keys, access, params, control).await?;
        if repeated.iter().any(|b| b.num_rows() > 0) {
            return Err(matched_rows::affects_a_row_twice());
        }
        // The stored rows to update are found before the insert, which skips their keys; the
        // update rewrites the files it found them in after.
        let found = matched_rows::find(coordinator, access, control, update).await?;
        let inserted = insert.await?;
        let updated = found.apply(coordinator).await?;
        added_up(updated, inserted)
    });
    transaction_block::all_or_nothing(coordinator.cluster(), access.principal().name(), both).await
}

/// The result of both halves of an upsert.
fn added_up(updated: StatementOutput, inserted: StatementOutput) -> Result<StatementOutput> {
    let (
        StatementOutput::Rows {
            schema,
            batches: updated,
        },
        StatementOutput::Rows {
            batches: inserted, ..
        },
    ) = (updated, inserted)
    else {
        return Err(SchedulerError::invalid("an upsert half returned no rows"));
    };
    let is_count = schema.fields().len() == 1 && schema.field(0).name() == "count";
    if is_count {
        let rows = |batches: Vec<RecordBatch>| {
            let schema = Arc::clone(&schema);
            StatementOutput::Rows { schema, batches }.affected_rows() as u64
        };
        return Ok(StatementOutput::count(rows(updated) + rows(inserted)));
    }
    let mut batches = updated;
    for batch in inserted {
        batches.push(RecordBatch::try_new(
            Arc::clone(&schema),
            batch.columns().to_vec(),
        )?);
    }
    Ok(StatementOutput::Rows { schema, batches })
}
