//! Prepared statements (what JDBC and ADBC use for `prepare`): the schema announced when
//! preparing is the schema of the rows, and preparing runs and records nothing.

use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::rows;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_queries_announce_their_schema_and_run_once() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    c.run("CREATE TABLE t (k BIGINT NOT NULL, v TEXT)").await;
    c.run("SELECT create_distributed_table('t', 'k', shard_count => 4)")
        .await;
    c.run("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await;
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
