//! Prepared statements (what JDBC and ADBC use for `prepare`): the schema announced when
//! preparing is the schema of the rows, and preparing runs and records nothing.

use shardfusion_tests::compare::rows;
use shardfusion_tests::{TestClient, TestCluster};

/// Table `t (k, v)`, distributed by `k` in 4 shards, with rows (1, a), (2, b), (3, c).
async fn three_rows(c: &mut TestClient) {
    c.run("CREATE TABLE t (k BIGINT NOT NULL, v TEXT)").await;
    c.run("SELECT create_distributed_table('t', 'k', shard_count => 4)")
        .await;
    c.run("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_queries_announce_their_schema_and_run_once() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    three_rows(&mut c).await;
    let before = c
        .scalar("SELECT count(*) FROM shardfusion_stat_statements")
        .await;

    let (schema, batches) = c
        .prepared("SELECT k, upper(v) AS v FROM t WHERE k >= 2 ORDER BY k")
        .await
        .expect("prepared query");
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["k", "v"]);
    assert_eq!(batches[0].schema().fields(), schema.fields());
    assert_eq!(rows(&batches), ["2 | B", "3 | C"]);
    // The counting query, then the one execution of the prepared query: no phantom entry
    // from preparing it.
    let after = c
        .scalar("SELECT count(*) FROM shardfusion_stat_statements")
        .await;
    let before: u64 = before.parse().expect("count");
    let after: u64 = after.parse().expect("count");
    assert_eq!(after, before + 2);

    // A prepared statement with side effects runs when executed, once.
    let (schema, _) = c
        .prepared("INSERT INTO t VALUES (4, 'd')")
        .await
        .expect("prepared insert");
    assert_eq!(schema.fields().len(), 1, "DML reports its count");
    assert_eq!(c.scalar("SELECT count(*) FROM t").await, "4");
    cluster.shutdown().await;
}

/// Parameters are bound as Arrow values in the plan (`$1`, `$2`), announced in the parameter
/// schema, cast to the placeholder's type, and an update runs once per row of parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_bind_into_the_plan() {
    use std::sync::Arc;

    use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::TryStreamExt;

    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        three_rows(&mut c).await;

        let client = c.flight_sql();
        let mut query = client
            .prepare(
                "SELECT k, v FROM t WHERE k >= $1 AND v <> $2 ORDER BY k".into(),
                None,
            )
            .await
            .expect("prepare");
        let parameters = query.parameter_schema().expect("parameter schema").clone();
        let names: Vec<&str> = parameters
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["$1", "$2"]);
        assert_eq!(parameters.field(0).data_type(), &DataType::Int64);
        assert_eq!(parameters.field(1).data_type(), &DataType::Utf8);
        // An Int32 for an Int64 placeholder is cast; a quote in a value stays a value.
        let bind = |k: i32, v: &str| {
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("$1", DataType::Int32, false),
                    Field::new("$2", DataType::Utf8, false),
                ])),
                vec![
                    Arc::new(Int32Array::from(vec![k])),
                    Arc::new(StringArray::from(vec![v])),
                ],
            )
            .expect("batch")
        };
        let mut run = async |query: &mut arrow_flight::sql::client::PreparedStatement<
            tonic::transport::Channel,
        >,
                             k: i32,
                             v: &str| {
            query.set_parameters(bind(k, v)).expect("bind");
            let info = query.execute().await.expect("execute");
            let ticket = info.endpoint[0].ticket.clone().expect("ticket");
            let stream = c.flight_sql().do_get(ticket).await.expect("do_get");
            let batches: Vec<RecordBatch> = stream.try_collect().await.expect("rows");
            rows(&batches)
        };
        assert_eq!(run(&mut query, 2, "zzz").await, ["2 | b", "3 | c"]);
        assert_eq!(run(&mut query, 1, "b").await, ["1 | a", "3 | c"]);
        assert_eq!(run(&mut query, 0, "x' OR '1'='1").await.len(), 3);
        query.close().await.expect("close");

        // An INSERT runs once per row of parameters and reports the rows it added; JDBC's
        // `?` placeholders are numbered as `$1`, `$2`.
        let mut insert = c
            .flight_sql()
            .prepare("INSERT INTO t VALUES (?, ?)".into(), None)
            .await
            .expect("prepare insert");
        let rows_to_add = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("$1", DataType::Int64, false),
                Field::new("$2", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![10, 11, 12])),
                Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])),
            ],
        )
        .expect("batch");
        insert.set_parameters(rows_to_add).expect("bind");
        assert_eq!(insert.execute_update().await.expect("insert"), 3);
        assert_eq!(c.scalar("SELECT count(*) FROM t WHERE k >= 10").await, "3");
        assert_eq!(
            c.scalar("SELECT count(*) FROM t WHERE k = 11 AND v IS NULL")
                .await,
            "1"
        );

        // Wrong arity and values that do not convert are the client's error.
        let mut query = c
            .flight_sql()
            .prepare("SELECT v FROM t WHERE k = $1".into(), None)
            .await
            .expect("prepare");
        query
            .set_parameters(
                RecordBatch::try_new(
                    Arc::new(Schema::new(vec![Field::new("$1", DataType::Utf8, false)])),
                    vec![Arc::new(StringArray::from(vec!["not a number"]))],
                )
                .expect("batch"),
            )
            .expect("bind");
        let refused = query.execute().await.expect_err("refused");
        let refused = refused.to_string();
        assert!(
            refused.contains("invalid argument") && refused.contains("parameter $1"),
            "{refused}"
        );
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
