//! Runs every `sql/*.slt` file against a fresh two-worker cluster through Flight SQL.
//!
//! Set `SHARDFUSION_SLT_COMPLETE=1` to rewrite the expected results from the current output
//! (then review the diff before committing it).

use std::path::PathBuf;
use std::time::Duration;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use async_trait::async_trait;
use shardfusion_tests::{TestClient, TestCluster};
use sqllogictest::{DBOutput, DefaultColumnType};

#[derive(Debug)]
struct SqlError(String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

struct FlightSqlDb {
    client: TestClient,
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

fn cell(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    let array = arrow::array::make_array(array.to_data());
    let text = array_value_to_string(&array, row).unwrap_or_default();
    match array.data_type() {
        DataType::Float32 | DataType::Float64 => match text.parse::<f64>() {
            Ok(v) => {
                let rounded = format!("{:.6}", v);
                let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
                if trimmed == "-0" {
                    "0".into()
                } else {
                    trimmed.to_string()
                }
            }
            Err(_) => text,
        },
        _ if text.is_empty() => "(empty)".into(),
        _ => text,
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for FlightSqlDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let batches: Vec<RecordBatch> = self
            .client
            .query(sql)
            .await
            .map_err(|s| SqlError(format!("{:?}: {}", s.code(), s.message())))?;
        let Some(first) = batches.first() else {
            return Ok(DBOutput::StatementComplete(0));
        };
        if first.num_columns() == 0 {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = first
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let mut rows = Vec::new();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| cell(c.as_ref(), row))
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "shardfusion"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sql exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let complete = std::env::var("SHARDFUSION_SLT_COMPLETE").is_ok_and(|v| v == "1");
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    for file in files {
        let cluster = TestCluster::start(2).await;
        let url = cluster.url.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let url = url.clone();
            async move {
                Ok(FlightSqlDb {
                    client: TestClient::connect(&url).await,
                })
            }
        });
        if complete {
            runner
                .update_test_file(
                    &file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        } else if let Err(e) = runner.run_file_async(&file).await {
            panic!("{}:\n{e}", file.display());
        }
        cluster.shutdown().await;
    }
}
