//! A coordinator restarted on the same data directory finds its tables and rows intact.

use shardfusion_tests::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_rows_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let cluster = TestCluster::start_in(dir.path(), 2).await;
        let mut client = cluster.client().await;
        client
            .run("CREATE TABLE accounts (id BIGINT NOT NULL, name TEXT, balance DOUBLE)")
            .await;
        client
            .run("SELECT create_distributed_table('accounts', 'id', shard_count => 6)")
            .await;
        client
            .run("CREATE TABLE plans (plan TEXT, price INT)")
            .await;
        client.run("SELECT create_reference_table('plans')").await;
        client.run("CREATE TABLE notes (note TEXT)").await;
        client
            .run("INSERT INTO accounts SELECT value, 'acct ' || value, value * 1.5 FROM generate_series(1, 5000)")
            .await;
        client
            .run("INSERT INTO plans VALUES ('free', 0), ('pro', 20)")
            .await;
        client
            .run("INSERT INTO notes VALUES ('kept on the coordinator')")
            .await;
        cluster.shutdown().await;
    }
    let cluster = TestCluster::start_in(dir.path(), 2).await;
    let mut client = cluster.client().await;
    assert_eq!(client.scalar("SELECT count(*) FROM accounts").await, "5000");
    assert_eq!(
        client.scalar("SELECT sum(balance) FROM accounts").await,
        "18753750.0"
    );
    assert_eq!(
        client
            .scalar("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'accounts'")
            .await,
        "6"
    );
    assert_eq!(client.scalar("SELECT sum(price) FROM plans").await, "20");
    assert_eq!(
        client.scalar("SELECT note FROM notes").await,
        "kept on the coordinator"
    );
    assert_eq!(
        client.scalar("SELECT count(*) FROM pg_dist_node").await,
        "2"
    );
    cluster.shutdown().await;
}
