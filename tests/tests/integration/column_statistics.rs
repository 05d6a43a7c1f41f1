//! Column statistics recorded as files are written (COPY, INSERT, bulk ingest) and recomputed
//! by `ANALYZE` are what DataFusion computes over the same rows, as `pg_stats`,
//! `citus_shards` and the scan's statistics in `EXPLAIN` show them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::array_value_to_string;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use shardfusion_tests::compare::rows;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

const COLUMNS: [&str; 7] = ["id", "grp", "name", "price", "day", "note", "score"];
const DDL: &str = "id BIGINT NOT NULL, grp INT, name TEXT, price DECIMAL(10, 2), day DATE, \
                   note TEXT, score DOUBLE";

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("grp", DataType::Int32, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]))
}

/// Rows `first..first + n`, with NULLs in every nullable column and notes longer than the
/// 64 bytes a bound keeps.
fn batch(first: usize, n: usize) -> RecordBatch {
    let ids = first..first + n;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone().map(|i| i as i64))),
        Arc::new(Int32Array::from_iter(
            ids.clone()
                .map(|i| (i % 17 != 0).then_some((i % 50) as i32)),
        )),
        Arc::new(StringArray::from_iter(
            ids.clone()
                .map(|i| (i % 23 != 0).then(|| format!("n{}", i % 700))),
        )),
        Arc::new(
            Decimal128Array::from_iter(ids.clone().map(|i| (i % 31 != 0).then_some(i as i128 * 3)))
                .with_precision_and_scale(10, 2)
                .expect("decimal"),
        ),
        Arc::new(Date32Array::from_iter(
            ids.clone()
                .map(|i| (i % 29 != 0).then_some(19_000 + (i % 365) as i32)),
        )),
        Arc::new(StringArray::from_iter(ids.clone().map(|i| {
            (i % 5 != 0).then(|| format!("note-{}{}", "z".repeat(80), i % 4))
        }))),
        Arc::new(Float64Array::from_iter(
            ids.map(|i| (i % 19 != 0).then_some(i as f64 / 7.0)),
        )),
    ];
    RecordBatch::try_new(schema(), columns).expect("batch")
}

/// Rows inserted with `INSERT ... VALUES`: extremes and an all-NULL row.
const INSERTED: &str = "(-5, -1, 'AAA', -9999.99, DATE '1999-12-31', NULL, -1.5), \
    (900000, 1000, 'zzz', 99999.99, DATE '2030-01-01', 'a', 1e10), \
    (900001, NULL, NULL, NULL, NULL, NULL, NULL)";

fn inserted() -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![-5, 900_000, 900_001])),
        Arc::new(Int32Array::from(vec![Some(-1), Some(1000), None])),
        Arc::new(StringArray::from(vec![Some("AAA"), Some("zzz"), None])),
        Arc::new(
            Decimal128Array::from(vec![Some(-999_999), Some(9_999_999), None])
                .with_precision_and_scale(10, 2)
                .expect("decimal"),
        ),
        Arc::new(Date32Array::from(vec![Some(10_956), Some(21_915), None])),
        Arc::new(StringArray::from(vec![None, Some("a"), None])),
        Arc::new(Float64Array::from(vec![Some(-1.5), Some(1e10), None])),
    ];
    RecordBatch::try_new(schema(), columns).expect("inserted")
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).expect("create parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

/// One `pg_stats` row: null_frac, n_distinct, min_value, max_value.
#[derive(Debug, Clone, PartialEq)]
struct ColumnRow {
    null_frac: f32,
    n_distinct: f32,
    min: Option<String>,
    max: Option<String>,
}

async fn pg_stats(client: &mut TestClient, table: &str) -> Vec<(String, ColumnRow)> {
    let batches = client
        .run(&format!(
            "SELECT attname, null_frac, n_distinct, min_value, max_value FROM pg_stats \
             WHERE schemaname = 'public' AND tablename = '{table}' ORDER BY attname"
        ))
        .await;
    let mut out = Vec::new();
    for batch in &batches {
        let text = |c: usize, r: usize| {
            let column = batch.column(c);
            (!column.is_null(r)).then(|| array_value_to_string(column, r).expect("text"))
        };
        let number = |c: usize, r: usize| text(c, r).and_then(|t| t.parse::<f32>().ok());
        for r in 0..batch.num_rows() {
            out.push((
                text(0, r).expect("attname"),
                ColumnRow {
                    null_frac: number(1, r).expect("null_frac"),
                    n_distinct: number(2, r).expect("n_distinct"),
                    min: text(3, r),
                    max: text(4, r),
                },
            ));
        }
    }
    out
}

/// What DataFusion says of each column of `table` in `ctx`.
async fn expected_stats(ctx: &SessionContext, table: &str) -> Vec<(String, ColumnRow)> {
    let mut out = Vec::new();
    let mut columns = COLUMNS.to_vec();
    columns.sort();
    for column in columns {
        let sql = format!(
            "SELECT count(*), count({column}), min({column}), max({column}), \
             count(DISTINCT {column}) FROM {table}"
        );
        let batches = ctx
            .sql(&sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let batch = &batches[0];
        let int = |c: usize| array_value_to_string(batch.column(c), 0).expect("text");
        let rows: f32 = int(0).parse().expect("count");
        let values: f32 = int(1).parse().expect("count");
        let text = |c: usize| {
            (!batch.column(c).is_null(0))
                .then(|| array_value_to_string(batch.column(c), 0).expect("text"))
        };
        out.push((
            column.to_string(),
            ColumnRow {
                null_frac: (rows - values) / rows,
                n_distinct: int(4).parse().expect("distinct"),
                min: text(2),
                max: text(3),
            },
        ));
    }
    out
}

/// Equal, except that n_distinct (a sketch's estimate) may be 3 % off, and bounds of `note`
/// (longer than 64 bytes) are a truncated prefix below the minimum and a rounded-up prefix
/// above the maximum.
fn assert_matches(actual: &[(String, ColumnRow)], expected: &[(String, ColumnRow)]) {
    assert_eq!(
        actual.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        expected.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        "pg_stats columns"
    );
    for ((column, a), (_, e)) in actual.iter().zip(expected) {
        assert!(
            (a.null_frac - e.null_frac).abs() < 1e-6,
            "{column}: null_frac {} != {}",
            a.null_frac,
            e.null_frac
        );
        let off = (a.n_distinct - e.n_distinct).abs() / e.n_distinct.max(1.0);
        assert!(
            off <= 0.03,
            "{column}: n_distinct {} vs {}",
            a.n_distinct,
            e.n_distinct
        );
        if column == "note" {
            let (min, max) = (a.min.clone().expect("min"), a.max.clone().expect("max"));
            let (emin, emax) = (e.min.clone().expect("min"), e.max.clone().expect("max"));
            assert!(min.len() <= 64 && emin.starts_with(&min), "{min} vs {emin}");
            assert!(max.len() <= 64 && max > emax, "{max} vs {emax}");
        } else {
            assert_eq!((&a.min, &a.max), (&e.min, &e.max), "{column} bounds");
        }
    }
}

/// Loads `table` (distributed over 4 shards, or local) with COPY, INSERT and bulk ingest;
/// returns the rows loaded.
async fn load(
    client: &mut TestClient,
    dir: &Path,
    table: &str,
    distributed: bool,
) -> Vec<RecordBatch> {
    client.run(&format!("CREATE TABLE {table} ({DDL})")).await;
    if distributed {
        client
            .run(&format!(
                "SELECT create_distributed_table('{table}', 'id', shard_count => 4)"
            ))
            .await;
    }
    let copied = batch(0, 3000);
    let path = dir.join(format!("{table}.parquet"));
    write_parquet(&path, &copied);
    client
        .run(&format!(
            "COPY {table} FROM '{}' WITH (FORMAT parquet)",
            path.display()
        ))
        .await;
    client
        .run(&format!("INSERT INTO {table} VALUES {INSERTED}"))
        .await;
    let ingested = batch(200_000, 2000);
    let loaded = client
        .ingest(table, futures::stream::iter([Ok(ingested.clone())]))
        .await
        .expect("ingest");
    assert_eq!(loaded, 2000);
    vec![copied, inserted(), ingested]
}

fn single_node(table: &str, batches: Vec<RecordBatch>) -> SessionContext {
    let ctx = shardfusion_tests::compare::single_node_session();
    let mem = MemTable::try_new(schema(), vec![batches]).expect("mem table");
    ctx.register_table(table, Arc::new(mem)).expect("register");
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_statistics_match_datafusion() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        for (table, distributed) in [("m", true), ("m_local", false)] {
            let batches = load(&mut client, dir.path(), table, distributed).await;
            let single = single_node(table, batches);
            let expected = expected_stats(&single, table).await;
            assert_matches(&pg_stats(&mut client, table).await, &expected);
        }
        // citus_shards: one row per placement, their row counts add up to the table's.
        let batches = client
            .run("SELECT shardid, row_count, shard_size FROM citus_shards WHERE table_name = 'm'")
            .await;
        let counts: Vec<i64> = rows(&batches)
            .iter()
            .map(|r| {
                r.split(" | ")
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .expect("row_count")
            })
            .collect();
        assert_eq!(counts.len(), 4);
        assert!(counts.iter().all(|c| *c > 0), "{counts:?}");
        assert_eq!(counts.iter().sum::<i64>(), 5003);
        assert_eq!(
            client
                .scalar("SELECT sum(row_count) FROM citus_shards WHERE table_name = 'm'")
                .await,
            client.scalar("SELECT count(*) FROM m").await
        );
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_recomputes_statistics_of_files_written_without_them() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        let catalog = Arc::clone(&cluster.coordinator().cluster().catalog);
        for (table, distributed) in [("m", true), ("m_local", false)] {
            let batches = load(&mut client, dir.path(), table, distributed).await;
            let expected = expected_stats(&single_node(table, batches), table).await;
            let written = pg_stats(&mut client, table).await;
            assert_matches(&written, &expected);
            // Files from before statistics existed have none: the table has no pg_stats rows.
            catalog.forget_column_stats(table).expect("forget");
            assert_eq!(pg_stats(&mut client, table).await, vec![]);
            client.run(&format!("ANALYZE {table}")).await;
            assert_eq!(pg_stats(&mut client, table).await, written);
        }
        // ANALYZE with no table covers every table.
        catalog.forget_column_stats("m").expect("forget");
        catalog.forget_column_stats("m_local").expect("forget");
        client.run("ANALYZE").await;
        assert_eq!(pg_stats(&mut client, "m").await.len(), COLUMNS.len());
        assert_eq!(pg_stats(&mut client, "m_local").await.len(), COLUMNS.len());
        // Errors name what is missing, with PostgreSQL's codes.
        let message = client.expect_error("ANALYZE nosuch", Code::NotFound).await;
        assert!(message.contains("nosuch"), "{message}");
        let message = client
            .expect_error("ANALYZE m (nosuch)", Code::NotFound)
            .await;
        assert!(message.contains("nosuch"), "{message}");
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// The scan's statistics, as `EXPLAIN` shows them with `datafusion.explain.show_statistics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_report_statistics_to_datafusion() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = SessionConfig::new();
        config.options_mut().explain.show_statistics = true;
        let cluster = TestCluster::start_with_config(2, config).await;
        let mut client = cluster.client().await;
        load(&mut client, dir.path(), "m", true).await;
        let scan_line = |plan: Vec<String>| {
            plan.join("\n")
                .lines()
                .find(|l| l.contains("ShardScanExec: table=m,"))
                .map(str::to_string)
                .expect("scan line")
        };
        // Every row read: exact row count, bounds and NULL counts.
        let plan = rows(&client.run("EXPLAIN SELECT id, grp FROM m").await);
        let line = scan_line(plan);
        assert!(line.contains("Rows=Exact(5003)"), "{line}");
        assert!(
            line.contains("Min=Exact(Int64(-5)) Max=Exact(Int64(900001))"),
            "{line}"
        );
        assert!(line.contains("Null=Exact(0)"), "{line}");
        assert!(
            line.contains("Min=Exact(Int32(-1)) Max=Exact(Int32(1000))"),
            "{line}"
        );
        // A filter may skip rows: estimates only, over the files left after pruning (one of
        // the two files the INSERT wrote holds a single row, whose grp is not 3).
        let plan = rows(&client.run("EXPLAIN SELECT id FROM m WHERE grp = 3").await);
        let line = scan_line(plan);
        assert!(line.contains("files=9 of 10"), "{line}");
        assert!(line.contains("Rows=Inexact(5002)"), "{line}");
        assert!(line.contains("Min=Inexact(Int64(-5))"), "{line}");
        // Exact statistics answer count(*), min and max without reading a file.
        let sql = "SELECT count(*), min(id), max(grp), min(name) FROM m";
        let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
        assert!(!plan.contains("ShardScanExec"), "{plan}");
        assert_eq!(rows(&client.run(sql).await), ["5003 | -5 | 1000 | AAA"]);
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
