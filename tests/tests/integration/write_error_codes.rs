//! The same failure gets the same gRPC code and SQLSTATE whichever way the rows come in —
//! `INSERT`, `COPY ... FROM` a file, Flight SQL bulk ingest (issue 13, "Typed errors, end to
//! end"): a missing table, a NULL in a NOT NULL column, a NULL distribution key, a write that
//! lost the race to `DROP TABLE`. And a refused write leaves the table as it was.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use shardfusion_common::status::SQLSTATE_METADATA;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::{Code, Status};

/// The code and SQLSTATE a client sees.
fn kind(status: &Status) -> (Code, Option<String>) {
    let sqlstate = status
        .metadata()
        .get(SQLSTATE_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status.code(), sqlstate)
}

fn batch(ids: Vec<Option<i64>>, values: Vec<Option<i64>>) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(values)),
        ],
    )
    .expect("batch")
}

/// Writes `(id, v)` rows into `table` three ways; returns each way's error.
async fn write_three_ways(
    client: &mut TestClient,
    dir: &std::path::Path,
    table: &str,
    rows: &[(Option<i64>, Option<i64>)],
) -> Vec<(&'static str, Status)> {
    let show = |x: &Option<i64>| x.map_or("NULL".to_string(), |x| x.to_string());
    let values = rows
        .iter()
        .map(|(id, v)| format!("({}, {})", show(id), show(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let csv = dir.join(format!("{table}.csv"));
    let lines: String = rows
        .iter()
        .map(|(id, v)| {
            let field = |x: &Option<i64>| x.map_or(String::new(), |x| x.to_string());
            format!("{},{}\n", field(id), field(v))
        })
        .collect();
    std::fs::write(&csv, lines).expect("write csv");
    let ingested = batch(
        rows.iter().map(|(id, _)| *id).collect(),
        rows.iter().map(|(_, v)| *v).collect(),
    );
    let mut errors = Vec::new();
    if let Err(status) = client
        .query(&format!("INSERT INTO {table} VALUES {values}"))
        .await
    {
        errors.push(("INSERT", status));
    }
    if let Err(status) = client
        .query(&format!(
            "COPY {table} FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ))
        .await
    {
        errors.push(("COPY", status));
    }
    if let Err(status) = client
        .ingest(table, futures::stream::iter([Ok(ingested)]))
        .await
    {
        errors.push(("ingest", status));
    }
    errors
}

fn assert_same_kind(what: &str, errors: &[(&str, Status)], expected: (Code, Option<&str>)) {
    let ways: Vec<&str> = errors.iter().map(|(way, _)| *way).collect();
    assert_eq!(
        ways,
        ["INSERT", "COPY", "ingest"],
        "{what}: every way fails"
    );
    for (way, status) in errors {
        let (code, sqlstate) = kind(status);
        assert_eq!(
            (code, sqlstate.as_deref()),
            expected,
            "{what} through {way}: {}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_failure_has_the_same_code_from_insert_copy_and_ingest() {
    let cluster = TestCluster::start(2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = cluster.client().await;

    let errors = write_three_ways(&mut client, dir.path(), "missing", &[(Some(1), Some(1))]).await;
    assert_same_kind("a missing table", &errors, (Code::NotFound, Some("42P01")));

    client
        .run("CREATE TABLE strict (id bigint NOT NULL, v bigint NOT NULL)")
        .await;
    client
        .run("SELECT create_distributed_table('strict', 'id')")
        .await;
    client.run("INSERT INTO strict VALUES (100, 100)").await;
    let errors = write_three_ways(
        &mut client,
        dir.path(),
        "strict",
        &[(Some(1), Some(1)), (Some(2), None)],
    )
    .await;
    assert_same_kind(
        "a NULL in a NOT NULL column",
        &errors,
        (Code::InvalidArgument, Some("23502")),
    );
    client.run("CREATE TABLE keyed (id bigint, v bigint)").await;
    client
        .run("SELECT create_distributed_table('keyed', 'id')")
        .await;
    let errors = write_three_ways(
        &mut client,
        dir.path(),
        "keyed",
        &[(Some(1), Some(1)), (None, Some(2))],
    )
    .await;
    assert_same_kind(
        "a NULL distribution key",
        &errors,
        (Code::InvalidArgument, Some("23502")),
    );
    // Nothing was half-written.
    assert_eq!(client.scalar("SELECT count(*) FROM strict").await, "1");
    assert_eq!(client.scalar("SELECT count(*) FROM keyed").await, "0");
}

/// A large write racing `DROP TABLE`: either it committed before the drop, or it fails with
/// the same code whichever way it came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_loses_the_race_to_drop_fails_the_same_way_each_way() {
    let cluster = TestCluster::start(2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = cluster.client().await;
    let rows = 1_000_000;
    let csv = dir.path().join("rows.csv");
    let lines: String = (0..rows).map(|i| format!("{i},{i}\n")).collect();
    std::fs::write(&csv, lines).expect("csv");
    let mut outcomes = Vec::new();
    for way in ["INSERT", "COPY", "ingest"] {
        let table = format!("raced_{}", way.to_lowercase());
        client
            .run(&format!("CREATE TABLE {table} (id bigint, v bigint)"))
            .await;
        client
            .run(&format!("SELECT create_distributed_table('{table}', 'id')"))
            .await;
        let mut writer = cluster.client().await;
        let csv = csv.clone();
        let target = table.clone();
        let write = tokio::spawn(async move {
            match way {
                "INSERT" => writer
                    .query(&format!(
                        "INSERT INTO {target} SELECT value, value * 2 FROM generate_series(1, {rows})"
                    ))
                    .await
                    .map(|_| ()),
                "COPY" => writer
                    .query(&format!(
                        "COPY {target} FROM '{}' WITH (FORMAT csv)",
                        csv.display()
                    ))
                    .await
                    .map(|_| ()),
                _ => {
                    let batches = (0..100).map(move |chunk| {
                        let ids: Vec<Option<i64>> =
                            (chunk * 10_000..(chunk + 1) * 10_000).map(Some).collect();
                        Ok(batch(ids.clone(), ids))
                    });
                    // A client that sends for a second: the DROP comes in the middle.
                    let paced = futures::StreamExt::then(futures::stream::iter(batches), |b| async {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        b
                    });
                    writer
                        .ingest(&target, paced)
                        .await
                        .map(|_| ())
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        client.run(&format!("DROP TABLE {table}")).await;
        let outcome = write.await.expect("write task");
        if let Err(status) = &outcome {
            println!("{way}: {:?} {}", status.code(), status.message());
        }
        outcomes.push((way, outcome.as_ref().err().map(kind)));
        client
            .expect_error(&format!("SELECT count(*) FROM {table}"), Code::NotFound)
            .await;
    }
    println!("outcomes: {outcomes:?}");
    let failures: Vec<_> = outcomes
        .iter()
        .filter_map(|(_, kind)| kind.clone())
        .collect();
    for failure in &failures {
        assert_eq!(
            failure, &failures[0],
            "every way that lost the race fails alike: {outcomes:?}"
        );
    }
    for failure in &failures {
        assert!(
            matches!(
                (failure.0, failure.1.as_deref()),
                (Code::Aborted, Some("40001")) | (Code::NotFound, Some("42P01"))
            ),
            "a lost race is a retryable conflict or a missing table: {outcomes:?}"
        );
    }
}
