//! Loading the same rows into a cluster and into single-node DataFusion, and reading what a
//! statement cost the coordinator, for the differential tests.

use std::path::Path;

use arrow::array::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::TestClient;
use crate::compare::rows;

/// Writes `batch` as one Parquet file at `path`.
pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).expect("create parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

/// Creates table `name` with `ddl`, runs `distribute` (a Citus function call, if any), loads
/// `batch` into it with `COPY` from a Parquet file in `dir`, and registers the same file as
/// `name` in `single`.
pub async fn load_table(
    client: &mut TestClient,
    single: &SessionContext,
    dir: &Path,
    (name, ddl, distribute): (&str, &str, Option<&str>),
    batch: &RecordBatch,
) {
    let path = dir.join(format!("{name}.parquet"));
    write_parquet(&path, batch);
    client.run(ddl).await;
    if let Some(distribute) = distribute {
        client.run(distribute).await;
    }
    client
        .run(&format!(
            "COPY {name} FROM '{}' WITH (FORMAT parquet)",
            path.display()
        ))
        .await;
    single
        .register_parquet(
            name,
            path.to_str().expect("utf8 path"),
            ParquetReadOptions::default(),
        )
        .await
        .expect("register");
}

/// `rows_received / calls` of the most recent statement whose normalized text (literals are
/// `$n`) starts with `prefix`, from `shardfusion_stat_statements`.
pub async fn rows_received(client: &mut TestClient, prefix: &str) -> u64 {
    let sql = format!(
        "SELECT rows_received / calls FROM shardfusion_stat_statements \
         WHERE starts_with(query, '{prefix}') ORDER BY started_at DESC LIMIT 1"
    );
    rows(&client.run(&sql).await)
        .first()
        .unwrap_or_else(|| panic!("no statement starting with {prefix}"))
        .parse()
        .expect("number")
}
