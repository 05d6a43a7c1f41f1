//! `pg_stats`: per table and column, what the files' statistics say, with PostgreSQL's column
//! names where they mean the same thing.
//!
//! | column | meaning |
//! |---|---|
//! | `schemaname`, `tablename`, `attname` | the column (`public`, as every table lives there) |
//! | `inherited` | always false (no inheritance) |
//! | `null_frac` | NULLs / rows |
//! | `avg_width` | NULL: not measured |
//! | `n_distinct` | estimated distinct non-NULL values (HyperLogLog), never negative |
//! | `min_value`, `max_value` | ShardFusion's own: the merged lower and upper bounds as text |
//!
//! PostgreSQL's sampled `most_common_vals` and `histogram_bounds` are not kept. The bounds
//! are bounds: a string longer than 64 bytes shows as a truncated (lower) or rounded-up
//! (upper) prefix, and a float zero as `-0`/`0`. One copy of each shard is read (the first
//! placement). A column appears only when every file of the table has statistics for it,
//! as an un-`ANALYZE`d table has no rows in PostgreSQL's `pg_stats`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float32Array, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::ScalarValue;
use shardfusion_common::column_stats::{ColumnStats, HyperLogLog};

use crate::model::{CatalogSnapshot, FileMeta, TableMeta};

/// The view's columns.
pub fn fields() -> Vec<Field> {
    let f = |name: &str, t: DataType| Field::new(name, t, true);
    vec![
        f("schemaname", DataType::Utf8),
        f("tablename", DataType::Utf8),
        f("attname", DataType::Utf8),
        f("inherited", DataType::Boolean),
        f("null_frac", DataType::Float32),
        f("avg_width", DataType::Int32),
        f("n_distinct", DataType::Float32),
        f("min_value", DataType::Utf8),
        f("max_value", DataType::Utf8),
    ]
}

/// One row of the view.
struct Row {
    table: String,
    column: String,
    null_frac: f32,
    n_distinct: Option<f32>,
    min: Option<String>,
    max: Option<String>,
}

/// The view's columns over `snapshot`, in [`fields`] order.
pub fn columns(snapshot: &CatalogSnapshot) -> Vec<ArrayRef> {
    let rows: Vec<Row> = snapshot
        .tables
        .values()
        .flat_map(|t| table_rows(t))
        .collect();
    vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "public"))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.table))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| &r.column),
        )),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|_| Some(false)))),
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| r.null_frac),
        )),
        Arc::new(Int32Array::from_iter(rows.iter().map(|_| None::<i32>))),
        Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.n_distinct))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.min.clone()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.max.clone()))),
    ]
}

fn table_rows(table: &TableMeta) -> Vec<Row> {
    let files: Vec<&FileMeta> = table
        .shards
        .iter()
        .filter_map(|s| s.placements.first())
        .flat_map(|p| &p.files)
        .collect();
    if files.is_empty() {
        return Vec::new();
    }
    let rows: u64 = files.iter().map(|f| f.row_count).sum();
    table
        .schema
        .fields()
        .iter()
        .filter_map(|field| {
            let per_file: Option<Vec<(&FileMeta, &ColumnStats)>> = files
                .iter()
                .map(|f| Some((*f, f.stats.as_ref()?.column(field.name())?)))
                .collect();
            let per_file = per_file?;
            Some(column_row(
                table,
                field.name(),
                field.data_type(),
                rows,
                &per_file,
            ))
        })
        .collect()
}

/// `value` as psql would print it (`2022-01-08`, `12.50`, `2023-11-14T22:13:20`).
fn text(value: &ScalarValue) -> String {
    value
        .to_array()
        .ok()
        .and_then(|array| array_value_to_string(&array, 0).ok())
        .unwrap_or_else(|| value.to_string())
}

fn column_row(
    table: &TableMeta,
    column: &str,
    data_type: &DataType,
    rows: u64,
    per_file: &[(&FileMeta, &ColumnStats)],
) -> Row {
    let nulls: u64 = per_file.iter().map(|(_, c)| c.null_count).sum();
    let valued: Vec<&ColumnStats> = per_file
        .iter()
        .filter(|(f, c)| c.null_count < f.row_count)
        .map(|(_, c)| *c)
        .collect();
    let bound = |pick: fn(&ColumnStats) -> Option<&ScalarValue>, lowest: bool| {
        let mut merged: Option<&ScalarValue> = None;
        for column in &valued {
            let value = pick(column).filter(|v| &v.data_type() == data_type)?;
            merged = Some(match merged {
                None => value,
                Some(current) => {
                    let ordering = value.partial_cmp(current)?;
                    let replaces = if lowest {
                        ordering.is_lt()
                    } else {
                        ordering.is_gt()
                    };
                    if replaces { value } else { current }
                }
            });
        }
        merged.map(text)
    };
    let mut sketch = HyperLogLog::new();
    let mut sketched = true;
    for (_, c) in per_file {
        match &c.distinct {
            Some(s) => sketch.merge(s),
            None => sketched = false,
        }
    }
    // A sketch may overshoot slightly; there cannot be more distinct values than values.
    let n_distinct = sketched.then(|| sketch.estimate().min(rows.saturating_sub(nulls)) as f32);
    Row {
        table: table.name.clone(),
        column: column.to_string(),
        null_frac: if rows == 0 {
            0.0
        } else {
            nulls as f32 / rows as f32
        },
        n_distinct,
        min: bound(ColumnStats::min_value, true),
        max: bound(ColumnStats::max_value, false),
    }
}
