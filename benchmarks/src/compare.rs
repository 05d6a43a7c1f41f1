//! Comparing distributed answers with single-node DataFusion on the same data.
//!
//! Rows are rendered as text (floats rounded to 9 significant digits, since partial sums are
//! added in another order) and compared as sorted lists unless the query orders its output.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use datafusion::prelude::{SessionConfig, SessionContext};

/// Single-node DataFusion set up as ShardFusion's sessions are (PostgreSQL dialect, text as
/// `Utf8`), on all cores: the reference every distributed answer is compared with.
pub fn single_node_session() -> SessionContext {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut config = SessionConfig::new().with_target_partitions(cores);
    let options = config.options_mut();
    options.sql_parser.dialect = datafusion::common::config::Dialect::PostgreSQL;
    options.sql_parser.map_string_types_to_utf8view = false;
    options.execution.parquet.schema_force_view_types = false;
    SessionContext::new_with_config(config)
}

/// Single-node DataFusion reading the Parquet file `source` (as table `source`) and writing
/// `query`'s rows to a temporary directory as Snappy Parquet, the codec ShardFusion's workers
/// use: the local baseline of a load or a rewrite. Returns the seconds and the rows written.
pub async fn single_node_rewrite(
    source: &std::path::Path,
    query: &str,
) -> Result<(f64, u64), String> {
    let ctx = single_node_session();
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    ctx.register_parquet(
        "source",
        source.to_string_lossy().as_ref(),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let sql = format!(
        "COPY ({query}) TO '{}/' STORED AS PARQUET OPTIONS ('format.compression' 'snappy')",
        out.path().display()
    );
    let batches = (ctx.sql(&sql).await.map_err(|e| e.to_string())?)
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let rows = batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    Ok((seconds, rows))
}

/// What single-node DataFusion answers to `sql` in `ctx`, panicking if it cannot: the
/// expected side of a comparison.
pub async fn single_node_answer(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    let frame = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("single-node DataFusion cannot plan {sql}: {e}"));
    frame
        .collect()
        .await
        .unwrap_or_else(|e| panic!("single-node DataFusion failed on {sql}: {e}"))
}

/// Each row of `batches` as one string.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| cell(c.as_ref(), row))
                .collect();
            out.push(cells.join(" | "));
        }
    }
    out
}

/// The first column of the first row, as [`rows`] prints it (empty without rows).
pub fn first_value(batches: &[RecordBatch]) -> String {
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| cell(b.column(0).as_ref(), 0))
        .unwrap_or_default()
}

/// The first two columns of the first row as integers (0 where NULL or not an integer).
pub fn first_two_ints(batches: &[RecordBatch]) -> (i64, i64) {
    let Some(batch) = batches
        .iter()
        .find(|b| b.num_rows() > 0 && b.num_columns() >= 2)
    else {
        return (0, 0);
    };
    let int = |column: usize| cell(batch.column(column).as_ref(), 0).parse().unwrap_or(0);
    (int(0), int(1))
}

fn cell(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".to_string();
    }
    match array.data_type() {
        DataType::Float32 | DataType::Float64 => {
            let text = array_value_to_string(&arrow::array::make_array(array.to_data()), row)
                .unwrap_or_default();
            match text.parse::<f64>() {
                Ok(v) if v.abs() < f64::MIN_POSITIVE => "0".to_string(),
                Ok(v) => format!("{:.9e}", v),
                Err(_) => text,
            }
        }
        _ => array_value_to_string(&arrow::array::make_array(array.to_data()), row)
            .unwrap_or_default(),
    }
}

/// Whether two results hold the same rows; `ordered` keeps row order significant. The error
/// names the first difference.
pub fn same(actual: &[RecordBatch], expected: &[RecordBatch], ordered: bool) -> Result<(), String> {
    let mut a = rows(actual);
    let mut e = rows(expected);
    if !ordered {
        a.sort();
        e.sort();
    }
    if a.len() != e.len() {
        return Err(format!("{} rows, expected {}", a.len(), e.len()));
    }
    match a.iter().zip(&e).position(|(x, y)| x != y) {
        Some(i) => Err(format!("row {i} is [{}], expected [{}]", a[i], e[i])),
        None => Ok(()),
    }
}

/// Asserts that two results hold the same rows; `ordered` keeps row order significant.
pub fn assert_same(sql: &str, actual: &[RecordBatch], expected: &[RecordBatch], ordered: bool) {
    if let Err(difference) = same(actual, expected, ordered) {
        panic!("{sql}: {difference}");
    }
}
