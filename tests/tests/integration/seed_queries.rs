//! The two queries from Citus's documentation run verbatim, cast to `noderole` included.

use shardfusion_tests::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_queries_run_verbatim() {
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    client
        .run("CREATE TABLE events (tenant_id BIGINT NOT NULL, kind TEXT, payload TEXT)")
        .await;
    client
        .run("SELECT create_distributed_table('events', 'tenant_id', shard_count => 4)")
        .await;

    let shards = client.run("SELECT * from pg_dist_shard;").await;
    let rows: usize = shards.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 4);
    let columns: Vec<String> = shards[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        columns,
        [
            "logicalrelid",
            "shardid",
            "shardstorage",
            "shardminvalue",
            "shardmaxvalue"
        ]
    );
    let first = shardfusion_tests::compare::rows(&shards);
    assert!(first[0].starts_with("events | "), "{first:?}");
    assert!(
        first[0].ends_with("| t | -2147483648 | -1073741825"),
        "{first:?}"
    );

    let shard_id = client
        .scalar("SELECT get_shard_id_for_distribution_column('events', 42)")
        .await;
    let sql = format!(
        "SELECT shardid, node.nodename, node.nodeport FROM pg_dist_placement placement JOIN \
         pg_dist_node node ON placement.groupid = node.groupid AND node.noderole = \
         'primary'::noderole WHERE shardid = {shard_id};"
    );
    let placement = shardfusion_tests::compare::rows(&client.run(&sql).await);
    assert_eq!(placement.len(), 1, "{placement:?}");
    assert!(placement[0].starts_with(&format!("{shard_id} | 127.0.0.1 | ")));
    let ports =
        shardfusion_tests::compare::rows(&client.run("SELECT nodeport FROM pg_dist_node").await);
    let port = placement[0]
        .rsplit(" | ")
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(ports.contains(&port), "{port} not among {ports:?}");
    cluster.shutdown().await;
}
