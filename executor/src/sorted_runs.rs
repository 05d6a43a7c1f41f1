//! Sorted runs: the rows of a shard file, cut into runs of at most [`RUN_ROWS`] rows, each
//! sorted by the table's distribution column before it is written as one Parquet row group.
//!
//! A run is bounded, so a write never holds more than one run per file in memory, however many
//! rows stream in. Within a row group the distribution column ascends, so its page index
//! (column and offset indexes, written for every column) lets a point query on that column
//! read one page of each row group instead of the whole file.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;

/// Rows of one run, and so of one row group: DuckDB's row group size.
pub const RUN_ROWS: usize = 122_880;

/// Rows of one data page: small enough that a point query decodes little of each column.
pub const PAGE_ROWS: usize = 4_096;

/// Collects batches into runs sorted by one column.
#[derive(Debug)]
pub struct SortedRuns {
    column: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

impl SortedRuns {
    /// Runs sorted by `column` of `schema`; `None` if the schema has no such column.
    pub fn by_column(schema: &SchemaRef, column: &str) -> Option<Self> {
        let column = schema.index_of(column).ok()?;
        Some(Self {
            column,
            pending: Vec::new(),
            pending_rows: 0,
        })
    }

    /// Adds `batch`; returns the runs it completed, in order, each sorted.
    pub fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut runs = Vec::new();
        let mut batch = batch;
        while self.pending_rows + batch.num_rows() >= RUN_ROWS {
            let take = RUN_ROWS - self.pending_rows;
            self.pending.push(batch.slice(0, take));
            self.pending_rows += take;
            runs.push(self.take_run()?);
            batch = batch.slice(take, batch.num_rows() - take);
        }
        if batch.num_rows() > 0 {
            self.pending_rows += batch.num_rows();
            self.pending.push(batch);
        }
        Ok(runs)
    }

    /// The last, partial run, sorted; `None` when no rows are pending.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.pending_rows == 0 {
            return Ok(None);
        }
        self.take_run().map(Some)
    }

    fn take_run(&mut self) -> Result<RecordBatch, ArrowError> {
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let schema = Arc::clone(batches[0].schema_ref());
        let run = concat_batches(&schema, &batches)?;
        drop(batches);
        // A distribution column holds no NULLs (rows with a NULL key are refused before they
        // are sent); other callers get them first.
        let order = sort_to_indices(
            run.column(self.column),
            Some(SortOptions {
                descending: false,
                nulls_first: true,
            }),
            None,
        )?;
        take_record_batch(&run, &order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(keys: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("id", DataType::Int64, false),
        ]));
        let names: Vec<String> = keys.iter().map(|k| format!("row {k}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from(keys.to_vec())),
            ],
        )
        .expect("columns match the schema")
    }

    fn keys(run: &RecordBatch) -> Vec<i64> {
        run.column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id is Int64")
            .values()
            .to_vec()
    }

    #[test]
    fn runs_are_sorted_bounded_and_keep_every_row_whole() {
        let first = batch(&(0..100_000).rev().collect::<Vec<_>>());
        let mut runs = SortedRuns::by_column(first.schema_ref(), "id").expect("id exists");
        let mut out = runs.push(first).expect("sorting succeeds");
        assert!(out.is_empty(), "100,000 rows fill no run yet");
        out.extend(
            runs.push(batch(&(100_000..250_000).rev().collect::<Vec<_>>()))
                .expect("sorting succeeds"),
        );
        assert_eq!(out.len(), 2, "250,000 rows complete two runs");
        out.extend(runs.finish().expect("sorting succeeds"));
        assert!(
            runs.finish().expect("sorting succeeds").is_none(),
            "nothing is left"
        );
        let mut all = Vec::new();
        for run in &out {
            assert!(run.num_rows() <= RUN_ROWS);
            let run_keys = keys(run);
            assert!(run_keys.is_sorted(), "each run ascends by id");
            // Every row keeps its own columns together.
            let names = run
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("sorting succeeds");
            for (i, key) in run_keys.iter().enumerate() {
                assert_eq!(names.value(i), format!("row {key}"));
            }
            all.extend(run_keys);
        }
        all.sort_unstable();
        assert_eq!(all, (0..250_000).collect::<Vec<_>>());
        assert_eq!(out.iter().map(|r| r.num_rows()).sum::<usize>(), 250_000);
        assert!(out.iter().all(|r| r.column(1).null_count() == 0));
    }

    #[test]
    fn an_unknown_column_sorts_nothing() {
        let b = batch(&[1]);
        assert!(SortedRuns::by_column(b.schema_ref(), "missing").is_none());
    }
}
