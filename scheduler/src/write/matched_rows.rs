//! `UPDATE ... FROM`, `DELETE ... USING`, `RETURNING` on `UPDATE` and `DELETE`, and the update
//! half of `INSERT ... ON CONFLICT ... DO UPDATE`: statements whose changes depend on other
//! tables, or whose changed rows the client wants back.
//!
//! 1. A query finds the rows the statement changes, with the new values of the columns it
//!    sets, planned and run by the coordinator as any query (co-located and reference tables
//!    joined on the workers), in the statement's snapshot:
//!    `SELECT [DISTINCT ON (key)] t.key..., <new values> FROM t [, from items] WHERE ...`.
//!    A row is named by its table's primary key (or a unique key of `NOT NULL` columns), or
//!    by all its columns when the table has none. With `FROM`, a row joined to several rows
//!    takes its new values from one of them, as in PostgreSQL; `ON CONFLICT DO UPDATE` refuses
//!    to change a row twice (SQLSTATE 21000).
//! 2. New values are cast to their columns' types and checked against `NOT NULL` and the
//!    table's `CHECK` constraints on the coordinator, and `RETURNING` is evaluated over the
//!    rows as the statement leaves them (the new rows of an `UPDATE`, the old ones of a
//!    `DELETE`), before anything is written. (A plain `UPDATE` of a table with checks takes
//!    this path too, so that its new rows are checked.)
//! 3. The files of the shards holding those rows are rewritten where they lie
//!    ([`row_changes::rewrite_rows`]): each node joins the file's rows to the keys of its shard
//!    and writes the new file; one catalog transaction swaps them all. A file changed by
//!    another statement since the snapshot fails the statement with 40001.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{CastOptions, cast_with_options, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{NullEquality, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::JoinType;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CaseExpr, Column, IsNotNullExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use shardfusion_catalog::{TableKind, TableMeta};
use shardfusion_common::hashing::shard_indexes;
use shardfusion_common::status::with_sqlstate;
use shardfusion_common::wire::CHANGED_COLUMN;
use tonic::Status;

use crate::auth::Access;
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::{Result, SchedulerError};
use crate::limits::statement_control::StatementControl;
use crate::session::check_constraints::Checks;
use crate::session::statement_context::session_for;
use crate::session::transaction::statement_snapshot;
use crate::statements::insert_returning::Returning;
use crate::statements::query::query_rows;
use crate::write::not_null::check_not_null;
use crate::write::row_changes::{RowRewrite, rewrite_rows};

/// How a row that the query of step 1 finds more than once is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondMatch {
    /// Take one of its matches (`UPDATE ... FROM`, `DELETE ... USING`).
    TakeOne,
    /// Refuse the statement (`ON CONFLICT DO UPDATE` with two rows of one key).
    Refuse,
}

/// A statement changing the rows its query finds (see the module docs).
pub struct MatchedChange {
    pub table: Arc<TableMeta>,
    /// The name the statement gives the table (its alias, or its name).
    pub qualifier: String,
    /// The other tables (`FROM` / `USING` items), as SQL.
    pub from: Vec<String>,
    /// The `WHERE` condition, as SQL.
    pub selection: Option<String>,
    /// The columns set (index in the table) and their new values, as SQL; none for a delete.
    pub set: Vec<(usize, String)>,
    pub delete: bool,
    pub second_match: SecondMatch,
    pub returning: Option<Returning>,
    /// The values of the placeholders (`$1`, ...) in the SQL above.
    pub params: Vec<ScalarValue>,
}

/// Runs `change`; its result is the `RETURNING` rows, or the number of rows changed.
pub async fn run(
    coordinator: &Coordinator,
    access: &Access<'_>,
    control: &StatementControl,
    change: MatchedChange,
) -> Result<StatementOutput> {
    let found = find(coordinator, access, control, change).await?;
    found.apply(coordinator).await
}

/// The rows a statement changes, found and checked (steps 1 and 2), not written yet.
pub enum Found {
    /// It changes no row: its result.
    Nothing(StatementOutput),
    Rows(Box<FoundRows>),
}

/// What step 3 writes, and the statement's result.
pub struct FoundRows {
    table: Arc<TableMeta>,
    /// The snapshot the rows were found in: its files are the ones rewritten.
    snapshot: Arc<shardfusion_catalog::CatalogSnapshot>,
    task_ctx: Arc<datafusion::execution::TaskContext>,
    rewrite: JoinMatched,
    delete: bool,
    returned: Option<(SchemaRef, Vec<RecordBatch>)>,
}

impl Found {
    /// Step 3: rewrites the files of the shards holding the rows found; the result is the
    /// `RETURNING` rows, or the number of rows changed.
    pub async fn apply(self, coordinator: &Coordinator) -> Result<StatementOutput> {
        let found = match self {
            Self::Nothing(output) => return Ok(output),
            Self::Rows(found) => found,
        };
        let keep = found.rewrite.keys.shards();
        let count = rewrite_rows(
            coordinator,
            found.snapshot,
            found.task_ctx,
            &found.table,
            keep,
            &found.rewrite,
            found.delete,
        )
        .await?;
        Ok(match found.returned {
            Some((schema, batches)) => StatementOutput::Rows { schema, batches },
            None => StatementOutput::count(count),
        })
    }
}

/// Steps 1 and 2 of `change` (see the module docs).
pub async fn find(
    coordinator: &Coordinator,
    access: &Access<'_>,
    control: &StatementControl,
    change: MatchedChange,
) -> Result<Found> {
    let cluster = coordinator.cluster();
    let table = Arc::clone(&change.table);
    let key = row_key(&table);
    // Step 1 reads the snapshot whose files step 3 rewrites.
    let snapshot = statement_snapshot(cluster)?;
    let session = session_for(cluster, Arc::clone(&snapshot))?;
    // Whole rows, for RETURNING and the table's checks; else only their keys.
    let checks = Checks::of(&table)?;
    let whole_rows = change.returning.is_some() || (checks.is_some() && !change.delete);
    let old_columns: Vec<usize> = match whole_rows {
        true => (0..table.schema.fields().len()).collect(),
        false => key.clone(),
    };
    let sql = finding_query(&change, &key, &old_columns);
    let (_, batches) = query_rows(&session, &sql, access, &change.params, control).await?;
    let found_schema = batches.first().map(RecordBatch::schema);
    let found = match found_schema {
        Some(schema) => concat_batches(&schema, &batches)?,
        None => {
            return Ok(Found::Nothing(
                empty_result(change.returning, &table).await?,
            ));
        }
    };
    if found.num_rows() == 0 {
        return Ok(Found::Nothing(
            empty_result(change.returning, &table).await?,
        ));
    }
    // Step 2: the new values in their columns' types; the rows as the statement leaves them.
    let old: Vec<ArrayRef> = (0..old_columns.len())
        .map(|i| Arc::clone(found.column(i)))
        .collect();
    let mut new_values = Vec::with_capacity(change.set.len());
    for (j, (index, _)) in change.set.iter().enumerate() {
        let field = table.schema.field(*index);
        let value = found.column(old_columns.len() + j);
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let value = cast_with_options(value, field.data_type(), &options).map_err(|e| {
            SchedulerError::invalid(format!(
                "column \"{}\" is of type {} but the value set does not fit it: {e}",
                field.name(),
                field.data_type()
            ))
        })?;
        new_values.push(value);
    }
    if !change.set.is_empty() {
        let fields: Vec<Field> = (change.set.iter())
            .map(|(i, _)| table.schema.field(*i).clone())
            .collect();
        // The batch's own fields are nullable, so that the check (not the batch) reports a NULL.
        let nullable: Vec<Field> = fields
            .iter()
            .map(|f| f.clone().with_nullable(true))
            .collect();
        let set_only = RecordBatch::try_new(Arc::new(Schema::new(nullable)), new_values.clone())?;
        check_not_null(&table.name, &Schema::new(fields), &set_only)?;
    }
    // The rows as the statement leaves them (the old ones for a delete).
    let rows = whole_rows
        .then(|| {
            let mut columns = old.clone();
            for ((index, _), value) in change.set.iter().zip(&new_values) {
                columns[*index] = Arc::clone(value);
            }
            let schema = crate::write::not_null::nullable(&table.schema);
            RecordBatch::try_new(schema, columns)
        })
        .transpose()?;
    if let (Some(checks), Some(rows), false) = (&checks, &rows, change.delete) {
        checks.check(rows)?;
    }
    let returned = match (&change.returning, rows) {
        (Some(returning), Some(rows)) => Some(returning.evaluate(rows.schema(), vec![rows]).await?),
        _ => None,
    };
    // Each row once: rows named alike (no key, equal rows) take the same change.
    let key_positions: Vec<usize> = key
        .iter()
        .map(|k| old_columns.iter().position(|c| c == k).unwrap_or(0))
        .collect();
    let keys: Vec<ArrayRef> = key_positions.iter().map(|p| Arc::clone(&old[*p])).collect();
    let firsts = first_of_each_key(&keys)?;
    if firsts.len() < found.num_rows() && change.second_match == SecondMatch::Refuse {
        return Err(affects_a_row_twice());
    }
    let firsts = UInt32Array::from(firsts);
    let mut shipped: Vec<ArrayRef> = Vec::with_capacity(keys.len() + new_values.len() + 1);
    let mut fields = Vec::with_capacity(shipped.capacity());
    for (i, (array, k)) in keys.iter().zip(&key).enumerate() {
        shipped.push(take(array, &firsts, None)?);
        let data_type = table.schema.field(*k).data_type().clone();
        fields.push(Field::new(format!("__sf_key_{i}"), data_type, true));
    }
    for (j, value) in new_values.iter().enumerate() {
        shipped.push(take(value, &firsts, None)?);
        let data_type = value.data_type().clone();
        fields.push(Field::new(format!("__sf_new_{j}"), data_type, true));
    }
    shipped.push(Arc::new(BooleanArray::from(vec![true; firsts.len()])));
    fields.push(Field::new("__sf_matched", DataType::Boolean, true));
    let matched = RecordBatch::try_new(Arc::new(Schema::new(fields)), shipped)?;

    // Step 3 (`Found::apply`): the keys of each shard, joined to its files' rows where they lie.
    let rewrite = JoinMatched {
        keys: ShardKeys::split(&table, &key, matched)?,
        key,
        set: change.set.iter().map(|(i, _)| *i).collect(),
        table_schema: Arc::clone(&table.schema),
    };
    Ok(Found::Rows(Box::new(FoundRows {
        table,
        snapshot,
        task_ctx: session.task_ctx(),
        rewrite,
        delete: change.delete,
        returned,
    })))
}

/// PostgreSQL's error for an upsert proposing one key twice (SQLSTATE 21000).
pub fn affects_a_row_twice() -> SchedulerError {
    SchedulerError::BadValue(with_sqlstate(
        Status::invalid_argument(
            "ON CONFLICT DO UPDATE command cannot affect row a second time: ensure that no rows \
             proposed for insertion within the same command have duplicate constrained values",
        ),
        "21000",
    ))
}

/// The result of a statement that changes no row.
async fn empty_result(returning: Option<Returning>, table: &TableMeta) -> Result<StatementOutput> {
    Ok(match returning {
        Some(returning) => {
            let schema = crate::write::not_null::nullable(&table.schema);
            let (schema, batches) = returning.evaluate(schema, Vec::new()).await?;
            StatementOutput::Rows { schema, batches }
        }
        None => StatementOutput::count(0),
    })
}

/// The columns naming one row of `table`: a unique key of `NOT NULL` columns (the primary
/// key first), else all of them.
fn row_key(table: &TableMeta) -> Vec<usize> {
    let index_of = |c: &String| table.schema.column_with_name(c).map(|(i, _)| i);
    for key in &table.unique_keys {
        let columns: Option<Vec<usize>> = key.columns.iter().map(index_of).collect();
        if let Some(columns) = columns
            && columns
                .iter()
                .all(|i| !table.schema.field(*i).is_nullable())
        {
            return columns;
        }
    }
    (0..table.schema.fields().len()).collect()
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Step 1's query: the `old_columns` of each row found, then the new value of each set column.
fn finding_query(change: &MatchedChange, key: &[usize], old_columns: &[usize]) -> String {
    let table = &change.table;
    let qualifier = quoted(&change.qualifier);
    let column = |i: usize| format!("{qualifier}.{}", quoted(table.schema.field(i).name()));
    let mut items: Vec<String> = old_columns
        .iter()
        .enumerate()
        .map(|(n, i)| format!("{} AS \"__sf_old_{n}\"", column(*i)))
        .collect();
    for (j, (_, value)) in change.set.iter().enumerate() {
        items.push(format!("({value}) AS \"__sf_new_{j}\""));
    }
    let distinct = if change.from.is_empty() || change.second_match == SecondMatch::Refuse {
        String::new()
    } else {
        let on: Vec<String> = key.iter().map(|i| column(*i)).collect();
        format!("DISTINCT ON ({}) ", on.join(", "))
    };
    let mut from = vec![format!("{} AS {qualifier}", quoted(&table.name))];
    from.extend(change.from.iter().cloned());
    let mut sql = format!(
        "SELECT {distinct}{} FROM {}",
        items.join(", "),
        from.join(", ")
    );
    if let Some(selection) = &change.selection {
        sql.push_str(&format!(" WHERE {selection}"));
    }
    sql
}

/// The index of the first row of each distinct value of `keys` (NULLs equal), in order.
fn first_of_each_key(keys: &[ArrayRef]) -> Result<Vec<u32>> {
    let fields = keys
        .iter()
        .map(|k| SortField::new(k.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let rows = converter.convert_columns(keys)?;
    let mut seen = HashSet::with_capacity(rows.num_rows());
    Ok((0..rows.num_rows())
        .filter(|i| seen.insert(rows.row(*i)))
        .map(|i| i as u32)
        .collect())
}

/// The matched keys (and new values) each shard is sent: only its own when the key holds the
/// distribution column, else all of them to every shard.
enum ShardKeys {
    ByShard(HashMap<usize, RecordBatch>),
    Everywhere(RecordBatch),
}

impl ShardKeys {
    fn split(table: &TableMeta, key: &[usize], matched: RecordBatch) -> Result<Self> {
        let TableKind::Distributed { column, .. } = &table.kind else {
            return Ok(Self::Everywhere(matched));
        };
        let position = key
            .iter()
            .position(|k| table.schema.field(*k).name() == column);
        let (Some(position), Some(ranges)) = (position, table.shard_ranges()) else {
            return Ok(Self::Everywhere(matched));
        };
        let indexes = shard_indexes(matched.column(position), &ranges)?;
        let mut rows: HashMap<usize, Vec<u32>> = HashMap::new();
        for (row, index) in indexes.iter().enumerate() {
            rows.entry(*index as usize).or_default().push(row as u32);
        }
        let mut by_shard = HashMap::with_capacity(rows.len());
        for (index, rows) in rows {
            let rows = UInt32Array::from(rows);
            let columns = matched
                .columns()
                .iter()
                .map(|c| take(c, &rows, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            by_shard.insert(index, RecordBatch::try_new(matched.schema(), columns)?);
        }
        Ok(Self::ByShard(by_shard))
    }

    /// The shards to rewrite (`None`: all).
    fn shards(&self) -> Option<BTreeSet<usize>> {
        match self {
            Self::ByShard(by_shard) => Some(by_shard.keys().copied().collect()),
            Self::Everywhere(_) => None,
        }
    }

    fn of(&self, shard_index: usize) -> Option<&RecordBatch> {
        match self {
            Self::ByShard(by_shard) => by_shard.get(&shard_index),
            Self::Everywhere(all) => Some(all),
        }
    }
}

/// Step 3's plan for one file: its rows right-joined to its shard's matched keys, each column
/// set taking its new value where the row matched.
struct JoinMatched {
    keys: ShardKeys,
    /// The key columns (index in the table).
    key: Vec<usize>,
    /// The set columns (index in the table), in the order of the new values.
    set: Vec<usize>,
    table_schema: SchemaRef,
}

impl RowRewrite for JoinMatched {
    fn over(
        &self,
        shard_index: usize,
        scan: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let matched = self.keys.of(shard_index).ok_or_else(|| {
            SchedulerError::invalid(format!("no matched rows for shard {shard_index}"))
        })?;
        let matched_schema = matched.schema();
        let width = matched_schema.fields().len();
        let keys = MemorySourceConfig::try_new_exec(
            &[vec![matched.clone()]],
            Arc::clone(&matched_schema),
            None,
        )?;
        let on = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let left: Arc<dyn PhysicalExpr> =
                    Arc::new(Column::new(matched_schema.field(i).name(), i));
                let right: Arc<dyn PhysicalExpr> =
                    Arc::new(Column::new(self.table_schema.field(*k).name(), *k));
                (left, right)
            })
            .collect();
        let join = HashJoinExec::try_new(
            keys,
            scan,
            on,
            None,
            &JoinType::Right,
            None,
            PartitionMode::CollectLeft,
            NullEquality::NullEqualsNull,
            false,
        )?;
        let was_matched: Arc<dyn PhysicalExpr> = Arc::new(IsNotNullExpr::new(Arc::new(
            Column::new("__sf_matched", width - 1),
        )));
        let mut outputs = Vec::with_capacity(self.table_schema.fields().len() + 1);
        for (i, field) in self.table_schema.fields().iter().enumerate() {
            let stored: Arc<dyn PhysicalExpr> = Arc::new(Column::new(field.name(), width + i));
            let expr = match self.set.iter().position(|s| *s == i) {
                Some(j) => {
                    let at = self.key.len() + j;
                    let new: Arc<dyn PhysicalExpr> =
                        Arc::new(Column::new(matched_schema.field(at).name(), at));
                    Arc::new(CaseExpr::try_new(
                        None,
                        vec![(Arc::clone(&was_matched), new)],
                        Some(stored),
                    )?) as Arc<dyn PhysicalExpr>
                }
                None => stored,
            };
            outputs.push(ProjectionExpr::new(expr, field.name().clone()));
        }
        outputs.push(ProjectionExpr::new(was_matched, CHANGED_COLUMN.to_string()));
        Ok(Arc::new(ProjectionExec::try_new(outputs, Arc::new(join))?))
    }
}
