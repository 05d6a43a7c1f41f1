//! `INSERT ... RETURNING`: the rows an `INSERT` wrote, as the expressions after `RETURNING`
//! compute them over each row (`RETURNING id` after a `serial` key was filled in, `RETURNING
//! *`, `RETURNING upper(name) AS n`).
//!
//! The `INSERT` runs as any other (planned by DataFusion, written by the table's sink,
//! committed or recorded in its transaction); its sink keeps a copy of the rows it writes
//! (with defaults and sequence values filled in) when the statement asks for them
//! ([`capture`], taken when the sink is planned). Once the rows are written, and before they
//! are committed, the `RETURNING` list is evaluated over them by DataFusion, with the table's name (or its alias)
//! naming them. With `ON CONFLICT DO NOTHING`, only the rows inserted are returned, as in
//! PostgreSQL. RETURNING needs `SELECT` on the table besides `INSERT`.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Insert, SelectItem};
use parking_lot::Mutex;
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_catalog::roles::TablePrivilege;

use crate::auth::Access;
use crate::coordinator::StatementOutput;
use crate::error::{Result, SchedulerError};
use crate::statements::table_references::insert_target;

/// The rows an `INSERT`'s sink wrote, kept for its `RETURNING`, and what the list gave.
#[derive(Debug)]
pub struct WrittenRows {
    returning: Returning,
    batches: Mutex<Vec<RecordBatch>>,
    result: Mutex<Option<(SchemaRef, Vec<RecordBatch>)>>,
}

impl WrittenRows {
    /// The sink wrote `batch`.
    pub fn keep(&self, batch: &RecordBatch) {
        self.batches.lock().push(batch.clone());
    }

    /// The sink wrote every row and has not committed them: the list is evaluated now, so
    /// that an error in it (a division by zero, a failed cast) fails the INSERT before its
    /// rows are committed.
    pub async fn evaluate(&self) -> Result<()> {
        let schema = Arc::clone(&self.returning.schema);
        let batches = std::mem::take(&mut *self.batches.lock());
        let result = self.returning.evaluate(schema, batches).await?;
        *self.result.lock() = Some(result);
        Ok(())
    }
}

tokio::task_local! {
    static CAPTURE: Arc<WrittenRows>;
}

/// Where the planned `INSERT`'s sink keeps its rows, if its statement has a `RETURNING`.
pub fn capture() -> Option<Arc<WrittenRows>> {
    CAPTURE.try_with(Arc::clone).ok()
}

/// Takes `RETURNING` off `insert`, for [`returning_rows`] after it ran; `None` without one.
/// The list is checked against the table's columns first (in [`returning_rows`]), so a bad
/// one fails the statement before anything is written.
pub fn take_returning(
    insert: &mut Insert,
    access: &Access<'_>,
    snapshot: &CatalogSnapshot,
) -> Result<Option<Returning>> {
    let Some(items) = insert.returning.take() else {
        return Ok(None);
    };
    let meta = insert_target(insert, snapshot, "RETURNING")?;
    let table = meta.name.clone();
    access.require_table(&table, TablePrivilege::Select)?;
    let schema = crate::write::not_null::nullable(&meta.schema);
    // The alias names the rows for RETURNING only (DataFusion's INSERT takes none).
    let named = match insert.table_alias.take() {
        Some(alias) => alias.alias.value,
        None => table,
    };
    Ok(Some(Returning {
        named,
        items,
        schema,
    }))
}

/// A `RETURNING` list and the name its rows go by.
#[derive(Debug, Clone)]
pub struct Returning {
    named: String,
    items: Vec<SelectItem>,
    /// The table's columns, as its sink writes them.
    schema: SchemaRef,
}

impl Returning {
    /// The list `items` over rows of `schema` named `named`.
    pub fn new(named: String, items: Vec<SelectItem>, schema: SchemaRef) -> Self {
        Self {
            named,
            items,
            schema,
        }
    }

    /// The list evaluated over `batches` (rows of `schema`).
    pub(crate) async fn evaluate(
        &self,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let ctx = SessionContext::new();
        let rows = MemTable::try_new(schema, vec![batches])?;
        let name = datafusion::common::TableReference::bare(self.named.as_str());
        ctx.register_table(name, Arc::new(rows))?;
        let items: Vec<String> = self.items.iter().map(ToString::to_string).collect();
        let sql = format!(
            "SELECT {} FROM \"{}\"",
            items.join(", "),
            self.named.replace('"', "\"\"")
        );
        let frame = ctx
            .sql(&sql)
            .await
            .map_err(|e| SchedulerError::invalid(format!("RETURNING {}: {e}", items.join(", "))))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        Ok((schema, frame.collect().await?))
    }
}

/// Runs `insert` (the statement without its `RETURNING`) keeping the rows it writes; its
/// sink evaluates `returning` over them before it commits them ([`WrittenRows::evaluate`]).
pub async fn returning_rows(
    returning: Returning,
    insert: impl std::future::Future<Output = Result<StatementOutput>>,
) -> Result<StatementOutput> {
    // A list that does not fit the table fails before anything is written.
    returning
        .evaluate(Arc::clone(&returning.schema), Vec::new())
        .await?;
    let written = Arc::new(WrittenRows {
        returning,
        batches: Mutex::default(),
        result: Mutex::default(),
    });
    CAPTURE.scope(Arc::clone(&written), insert).await?;
    let (schema, batches) = written.result.lock().take().ok_or_else(|| {
        SchedulerError::invalid("INSERT ... RETURNING wrote through no table sink")
    })?;
    Ok(StatementOutput::Rows { schema, batches })
}
