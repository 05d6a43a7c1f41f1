//! Files are skipped by the min/max of any filtered column, never changing an answer.
//!
//! A distributed table (and a local and a reference copy) is loaded in six `COPY`s, each holding one range of
//! dates, quantities, prices, names, timestamps and floats, so each `COPY` writes one file per
//! shard whose ranges do not overlap the others'. Filters on non-distribution columns of every
//! type (with coercions, NULLs, NaN, signed zeros and strings longer than the 64 bytes a bound
//! keeps) must answer as single-node DataFusion does on the same Parquet files, and EXPLAIN
//! shows that a filter on one batch's range reads only that batch's files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::prelude::ParquetReadOptions;
use shardfusion_tests::compare::{assert_same, rows};
use shardfusion_tests::{TestClient, TestCluster};

const BATCHES: usize = 6;
const ROWS: usize = 400;
const SHARDS: usize = 4;
const LETTERS: [&str; BATCHES] = ["a", "b", "c", "d", "e", "f"];
/// The same rows as a distributed table, a local table and a reference table.
const TABLES: [&str; 3] = ["ev", "ev_local", "ev_ref"];

fn long_tag(batch: usize, i: usize) -> String {
    match batch {
        // Too long for a bound, and no upper bound can be rounded up from it.
        5 => format!("{}{}", "\u{10FFFF}".repeat(20), i % 3),
        // 72 bytes: the batch's letter is inside the 64 bytes a bound keeps, the rest is cut.
        _ => format!(
            "{}{}{}{}",
            "x".repeat(60),
            LETTERS[batch],
            "y".repeat(10),
            i % 5
        ),
    }
}

fn batch(b: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("day", DataType::Date32, true),
        Field::new("qty", DataType::Int32, true),
        Field::new("price", DataType::Decimal128(12, 2), true),
        Field::new("name", DataType::Utf8, true),
        Field::new("tag", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("f", DataType::Float64, true),
    ]));
    let range = 0..ROWS;
    let f = |i: usize| match (b, i) {
        (1, 0) => Some(0.0),
        (2, 0) => Some(-0.0),
        (3, 7) => Some(f64::NAN),
        (_, i) if i % 13 == 0 => None,
        (b, i) => Some(b as f64 + i as f64 / 1000.0),
    };
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                range.clone().map(|i| (b * ROWS + i) as i64),
            )) as ArrayRef,
            Arc::new(Date32Array::from_iter_values(
                range.clone().map(|i| 19_000 + (b * 10 + i % 10) as i32),
            )),
            Arc::new(Int32Array::from_iter(
                range
                    .clone()
                    .map(|i| (i % 7 != 0).then_some((b * 100 + i % 100) as i32)),
            )),
            Arc::new(
                Decimal128Array::from_iter_values(range.clone().map(|i| (b * 10_000 + i) as i128))
                    .with_precision_and_scale(12, 2)
                    .expect("decimal"),
            ),
            Arc::new(StringArray::from_iter_values(
                range
                    .clone()
                    .map(|i| format!("{}{:03}", LETTERS[b], i % 200)),
            )),
            Arc::new(StringArray::from_iter(
                range.clone().map(|i| (i % 9 != 0).then(|| long_tag(b, i))),
            )),
            Arc::new(BooleanArray::from_iter(
                range
                    .clone()
                    .map(|i| (i % 11 != 0).then_some(b.is_multiple_of(2))),
            )),
            Arc::new(TimestampNanosecondArray::from_iter_values(
                range
                    .clone()
                    .map(|i| (1_700_000_000 + (b * 864_000 + i * 60) as i64) * 1_000_000_000),
            )),
            Arc::new(Float64Array::from_iter(range.map(f))),
        ],
    )
    .expect("batch")
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).expect("create parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

const COLUMNS: &str = "id BIGINT NOT NULL, day DATE, qty INT, price DECIMAL(12, 2), name TEXT, \
                       tag TEXT, flag BOOLEAN, ts TIMESTAMP, f DOUBLE";

/// Filters on every kind of column; `{t}` is the table.
fn queries() -> Vec<String> {
    let tag_b = long_tag(1, 2);
    let tag_f = long_tag(5, 1);
    let prefix_c = format!("{}c", "x".repeat(60));
    let filters = [
        "day = DATE '2022-01-22'".to_string(),
        "day = '2022-01-22'".into(),
        "day BETWEEN DATE '2022-01-12' AND DATE '2022-01-23'".into(),
        "day > DATE '2022-02-17'".into(),
        "day < DATE '1990-01-01'".into(),
        "qty = 150".into(),
        "qty = CAST(150 AS BIGINT)".into(),
        "CAST(qty AS BIGINT) > 420".into(),
        "qty IN (5, 250, 999)".into(),
        "qty NOT IN (5, 250)".into(),
        "qty + 1 = 151".into(),
        "qty IS NULL".into(),
        "qty IS NULL AND day = DATE '2022-01-01'".into(),
        "qty IS NOT NULL AND qty < 3".into(),
        "coalesce(qty, -1) = -1".into(),
        "price = 100.05".into(),
        "price > 400".into(),
        "price < 1.005".into(),
        "price BETWEEN 200.00 AND 200.10".into(),
        "name = 'c017'".into(),
        "name LIKE 'd1%'".into(),
        "name > 'e199'".into(),
        "name < 'a'".into(),
        format!("tag = '{tag_b}'"),
        format!("tag = '{tag_f}'"),
        format!("tag > '{prefix_c}'"),
        format!("tag < '{prefix_c}'"),
        format!("tag >= '{}'", "\u{10FFFF}".repeat(20)),
        "tag IS NULL".into(),
        "flag".into(),
        "NOT flag".into(),
        "flag IS NULL".into(),
        "ts >= TIMESTAMP '2023-12-24 00:00:00'".into(),
        "ts < TIMESTAMP '2023-11-15 00:00:00'".into(),
        "f > 4.2".into(),
        "f = 0.0".into(),
        "f = -0.0".into(),
        "f < 0.0".into(),
        "f > 1e300".into(),
        "isnan(f)".into(),
        "f IS NULL".into(),
        "day = DATE '2022-01-22' OR qty = 420".into(),
        "day = DATE '2022-01-22' AND name = 'c017'".into(),
    ];
    filters
        .iter()
        .flat_map(|w| {
            [
                format!("SELECT count(*) FROM {{t}} WHERE {w}"),
                format!("SELECT id, day, qty, price, name, flag, ts, f FROM {{t}} WHERE {w}"),
            ]
        })
        .collect()
}

/// The files the scan of `table` reads, and all its files, as EXPLAIN shows them
/// (`files=N` or `files=N of M` on the ShardScanExec line).
async fn files_read(client: &mut TestClient, table: &str, sql: &str) -> (usize, usize) {
    let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
    let marker = format!("ShardScanExec: table={table},");
    let line = plan
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no scan of {table} in:\n{plan}"));
    let after = line.split("files=").nth(1).expect("files=");
    let mut words = after.split([',', ' ']).filter(|w| !w.is_empty());
    let read: usize = words.next().and_then(|w| w.parse().ok()).expect("count");
    let total = match words.next() {
        Some("of") => words.next().and_then(|w| w.parse().ok()).expect("total"),
        _ => read,
    };
    (read, total)
}

async fn load(client: &mut TestClient, dir: &Path) {
    client.run(&format!("CREATE TABLE ev ({COLUMNS})")).await;
    client
        .run(&format!(
            "SELECT create_distributed_table('ev', 'id', shard_count => {SHARDS})"
        ))
        .await;
    client
        .run(&format!("CREATE TABLE ev_local ({COLUMNS})"))
        .await;
    client
        .run(&format!("CREATE TABLE ev_ref ({COLUMNS})"))
        .await;
    client.run("SELECT create_reference_table('ev_ref')").await;
    for b in 0..BATCHES {
        let path = dir.join(format!("batch{b}.parquet"));
        write_parquet(&path, &batch(b));
        for table in TABLES {
            client
                .run(&format!(
                    "COPY {table} FROM '{}' WITH (FORMAT parquet)",
                    path.display()
                ))
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_any_column_skip_files_without_changing_answers() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        load(&mut client, dir.path()).await;
        let single = shardfusion_tests::compare::single_node_session();
        for table in TABLES {
            single
                .register_parquet(
                    table,
                    dir.path().to_str().expect("utf8 path"),
                    ParquetReadOptions::default(),
                )
                .await
                .expect("register");
        }
        for template in queries() {
            for table in TABLES {
                let sql = template.replace("{t}", table);
                let actual = client.run(&sql).await;
                let expected = single
                    .sql(&sql)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .unwrap_or_else(|e| panic!("single node failed on {sql}: {e}"));
                assert_same(&sql, &actual, &expected, false);
            }
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_on_one_batch_reads_only_its_files() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        load(&mut client, dir.path()).await;
        let all = BATCHES * SHARDS;
        // One batch's range: one file in each shard.
        for (filter, read) in [
            ("day = DATE '2022-01-22'", SHARDS),
            ("day >= DATE '2022-02-17'", 2 * SHARDS),
            ("qty = 150", SHARDS),
            ("price > 400", 2 * SHARDS),
            ("name = 'c017'", SHARDS),
            ("ts < TIMESTAMP '2023-11-25 00:00:00'", 2 * SHARDS),
            ("NOT flag", 3 * SHARDS),
            ("day < DATE '1990-01-01'", 0),
            (&*format!("tag = '{}'", long_tag(1, 2)), SHARDS),
            // Batch 5's tags have no upper bound: its files are kept for any tag above.
            (&*format!("tag > '{}e'", "x".repeat(60)), 2 * SHARDS),
            // Nothing to prune with: every file is read.
            ("qty + 1 = 151", all),
            ("isnan(f)", all),
        ] {
            let sql = format!("SELECT count(*) FROM ev WHERE {filter}");
            assert_eq!(
                files_read(&mut client, "ev", &sql).await,
                (read, all),
                "{sql}"
            );
        }
        // The coordinator's local table and the reference table: one file per COPY.
        for table in ["ev_local", "ev_ref"] {
            let sql = format!("SELECT count(*) FROM {table} WHERE day = DATE '2022-01-22'");
            assert_eq!(files_read(&mut client, table, &sql).await, (1, BATCHES));
            assert_eq!(client.scalar(&sql).await, "40");
        }

        // Without statistics (files written before they existed), nothing is pruned, and
        // ANALYZE brings the pruning back.
        let catalog = &cluster.coordinator().cluster().catalog;
        catalog.forget_column_stats("ev").expect("forget");
        let sql = "SELECT count(*) FROM ev WHERE day = DATE '2022-01-22'";
        assert_eq!(files_read(&mut client, "ev", sql).await, (all, all));
        assert_eq!(client.scalar(sql).await, "40");
        client.run("ANALYZE ev").await;
        assert_eq!(files_read(&mut client, "ev", sql).await, (SHARDS, all));
        assert_eq!(client.scalar(sql).await, "40");
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
