//! A statement is all-or-nothing: when a worker dies during a load, none of the load's rows
//! become visible, and the cluster keeps answering.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use shardfusion_tests::TestCluster;

fn write_rows(path: &std::path::Path, rows: i64) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, true),
    ]));
    let file = std::fs::File::create(path).expect("create");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).expect("writer");
    let chunk = 100_000;
    let mut start = 0;
    while start < rows {
        let end = (start + chunk).min(rows);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(start..end)) as ArrayRef,
                Arc::new(StringArray::from_iter_values(
                    (start..end).map(|i| format!("payload number {i} with some padding text")),
                )),
            ],
        )
        .expect("batch");
        writer.write(&batch).expect("write");
        start = end;
    }
    writer.close().expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_during_copy_leaves_the_table_as_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let small = dir.path().join("small.parquet");
    let big = dir.path().join("big.parquet");
    write_rows(&small, 1000);
    write_rows(&big, 5_000_000);

    let mut cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    client
        .run("CREATE TABLE logs (id BIGINT NOT NULL, payload TEXT)")
        .await;
    client
        .run("SELECT create_distributed_table('logs', 'id', shard_count => 8)")
        .await;
    client
        .run(&format!(
            "COPY logs FROM '{}' WITH (FORMAT parquet)",
            small.display()
        ))
        .await;
    assert_eq!(client.scalar("SELECT count(*) FROM logs").await, "1000");

    let url = cluster.url.clone();
    let copy = format!("COPY logs FROM '{}' WITH (FORMAT parquet)", big.display());
    let load = tokio::spawn(async move {
        let mut c = shardfusion_tests::TestClient::connect(&url).await;
        c.query(&copy).await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    cluster.kill_worker(1);
    let result = tokio::time::timeout(Duration::from_secs(120), load)
        .await
        .expect("COPY finishes")
        .expect("task");
    let status = result.expect_err("COPY must fail when a worker dies");
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::Internal
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
        ),
        "{:?}: {}",
        status.code(),
        status.message()
    );
    // Shards on the surviving worker still answer; the dead worker's shards fail clearly.
    // (A scan, not `count(*)`: that is answered from the catalog's row counts.)
    let status = client
        .query("SELECT sum(id) FROM logs")
        .await
        .expect_err("worker 2 is down");
    assert_eq!(
        status.code(),
        tonic::Code::Unavailable,
        "{}",
        status.message()
    );
    assert_eq!(
        client.scalar("SELECT count(*) FROM pg_dist_shard").await,
        "8"
    );
    // Committed state is unchanged: the catalog still lists only the first load's files.
    let files: u64 = cluster
        .coordinator()
        .cluster()
        .catalog
        .table("logs")
        .expect("table")
        .row_count();
    assert_eq!(files, 1000);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_is_down_fails_the_insert_without_partial_rows() {
    let mut cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    client.run("CREATE TABLE t (k INT NOT NULL, v TEXT)").await;
    client
        .run("SELECT create_distributed_table('t', 'k', shard_count => 4)")
        .await;
    client.run("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await;
    cluster.kill_worker(0);
    let status = client
        .query("INSERT INTO t SELECT value, 'x' FROM generate_series(10, 1000)")
        .await
        .expect_err("a worker is down");
    assert_eq!(
        status.code(),
        tonic::Code::Unavailable,
        "{}",
        status.message()
    );
    let rows = cluster
        .coordinator()
        .cluster()
        .catalog
        .table("t")
        .expect("t")
        .row_count();
    assert_eq!(rows, 2);
    cluster.shutdown().await;
}
