//! Shard moves and node management on the in-process cluster: Citus's call forms, the
//! background rebalancer, `by_disk_size`, disabling a node, and the errors a user gets for
//! moves that cannot be made.

use std::time::Duration;

use shardfusion_common::auth::ClusterSecret;
use shardfusion_executor::WorkerConfig;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

/// Starts a worker in this process and adds it with `citus_add_node`; returns its port and
/// what stops it.
async fn add_worker(
    client: &mut TestClient,
    dir: &std::path::Path,
) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config = WorkerConfig {
        data_dir: dir.to_path_buf(),
        storage: None,
        secret: ClusterSecret::new("test-cluster-secret"),
        tls: None,
        cluster_tls: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(shardfusion_executor::serve(listener, config, async {
        let _ = stopped.await;
    }));
    client
        .run(&format!("SELECT citus_add_node('127.0.0.1', {port})"))
        .await;
    (port, stop)
}

async fn shards_on(client: &mut TestClient, port: u16) -> i64 {
    client
        .scalar(&format!(
            "SELECT count(*) FROM citus_shards WHERE citus_table_type = 'distributed' \
             AND nodeport = {port}"
        ))
        .await
        .parse()
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moves_rebalancing_and_node_states() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE accounts (id BIGINT NOT NULL, owner TEXT)")
            .await;
        c.run("CREATE TABLE ledger (account BIGINT NOT NULL, amount BIGINT NOT NULL)")
            .await;
        c.run("CREATE TABLE currencies (code TEXT NOT NULL, name TEXT)")
            .await;
        c.run("SELECT create_distributed_table('accounts', 'id', shard_count => 6)")
            .await;
        c.run("SELECT create_distributed_table('ledger', 'account', colocate_with => 'accounts')")
            .await;
        c.run("SELECT create_reference_table('currencies')").await;
        c.run("INSERT INTO currencies VALUES ('EUR', 'euro'), ('USD', 'dollar')")
            .await;
        c.run("INSERT INTO accounts SELECT v, 'owner ' || v FROM generate_series(1, 3000) t(v)")
            .await;
        // Skewed: most of the ledger's bytes in a few accounts.
        c.run("INSERT INTO ledger SELECT v % 7, v FROM generate_series(1, 60000) t(v)")
            .await;
        let total = "SELECT CAST(sum(amount) AS BIGINT), count(*) FROM ledger \
                     JOIN accounts ON account = id JOIN currencies ON code = 'EUR'";
        let expected = c.run(total).await;

        let dir = tempfile::tempdir().expect("temp dir");
        let (port, _stop) = add_worker(&mut c, dir.path()).await;
        assert_eq!(
            c.scalar(&format!(
                "SELECT count(*) FROM citus_shards WHERE table_name = 'currencies' \
                 AND nodeport = {port}"
            ))
            .await,
            "1",
            "the reference table is on the new node"
        );
        let third = c
            .scalar(&format!(
                "SELECT nodeid FROM pg_dist_node WHERE nodeport = {port}"
            ))
            .await;

        // The older call form, by host and port.
        let (shard, source_port) = {
            let batches = c
                .run(
                    "SELECT shardid, CAST(nodeport AS BIGINT) FROM citus_shards \
                     WHERE table_name = 'ledger' ORDER BY shardid LIMIT 1",
                )
                .await;
            let rows = shardfusion_tests::compare::rows(&batches);
            let cells: Vec<String> = rows[0].split(" | ").map(str::to_string).collect();
            (cells[0].clone(), cells[1].clone())
        };
        c.run(&format!(
            "SELECT master_move_shard_placement({shard}, '127.0.0.1', {source_port}, \
             '127.0.0.1', {port}, 'block_writes')"
        ))
        .await;
        // The co-located accounts shard moved with it.
        assert_eq!(shards_on(&mut c, port).await, 2);
        assert_same_rows(&mut c, total, &expected).await;

        // Errors a user can act on.
        let message = c
            .expect_error(
                &format!("SELECT citus_move_shard_placement({shard}, {third}, {third})"),
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("must differ"), "{message}");
        let message = c
            .expect_error(
                "SELECT citus_move_shard_placement(999999, 1, 2)",
                Code::NotFound,
            )
            .await;
        assert!(message.contains("does not exist"), "{message}");
        let reference = c
            .scalar("SELECT min(shardid) FROM citus_shards WHERE table_name = 'currencies'")
            .await;
        let message = c
            .expect_error(
                &format!("SELECT citus_move_shard_placement({reference}, 1, 2)"),
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("reference table"), "{message}");
        let message = c
            .expect_error(
                "SELECT rebalance_table_shards(rebalance_strategy => 'by_luck')",
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("by_disk_size"), "{message}");

        // The background rebalancer.
        let job = c
            .scalar("SELECT citus_rebalance_start(max_shard_moves => 2)")
            .await;
        c.run("SELECT citus_rebalance_wait()").await;
        let status = c
            .run("SELECT job_id, state FROM citus_rebalance_status()")
            .await;
        assert_eq!(
            shardfusion_tests::compare::rows(&status),
            vec![format!("{job} | finished")]
        );
        let per_node: Vec<i64> = {
            let mut out = Vec::new();
            for p in [port].into_iter().chain(worker_ports(&mut c, port).await) {
                out.push(shards_on(&mut c, p).await);
            }
            out
        };
        assert_eq!(
            per_node,
            vec![4, 4, 4],
            "2 tables x 2 shard groups per node"
        );
        assert_same_rows(&mut c, total, &expected).await;
        assert_eq!(
            c.scalar("SELECT count(*) FROM get_rebalance_table_shards_plan()")
                .await,
            "0",
            "balanced"
        );
        // A disabled node's shards are unavailable, naming them; activated, they serve again.
        c.run(&format!("SELECT citus_disable_node('127.0.0.1', {port})"))
            .await;
        assert_eq!(
            c.scalar(&format!(
                "SELECT isactive FROM pg_dist_node WHERE nodeport = {port}"
            ))
            .await,
            "false"
        );
        let message = c.expect_error(total, Code::Unavailable).await;
        assert!(
            message.contains("no placement on an active node")
                && message.contains(&port.to_string()),
            "{message}"
        );
        c.run(&format!("SELECT citus_activate_node('127.0.0.1', {port})"))
            .await;
        assert_same_rows(&mut c, total, &expected).await;

        // By bytes, the skewed shard groups spread differently; every answer stays.
        c.run("SELECT rebalance_table_shards(rebalance_strategy => 'by_disk_size')")
            .await;
        assert_same_rows(&mut c, total, &expected).await;

        // Drained, it holds nothing, gets nothing new, and can be removed.
        c.run(&format!("SELECT citus_drain_node('127.0.0.1', {port})"))
            .await;
        assert_eq!(shards_on(&mut c, port).await, 0);
        c.run("CREATE TABLE later (k BIGINT NOT NULL)").await;
        c.run("SELECT create_distributed_table('later', 'k', shard_count => 4)")
            .await;
        assert_eq!(shards_on(&mut c, port).await, 0);
        c.run(&format!("SELECT citus_remove_node('127.0.0.1', {port})"))
            .await;
        assert_same_rows(&mut c, total, &expected).await;
        assert_eq!(c.scalar("SELECT count(*) FROM pg_dist_node").await, "2");
        cluster.shutdown().await;
    })
    .await
    .expect("the test finishes within 240 s");
}

/// The ports of the workers other than `except`.
async fn worker_ports(client: &mut TestClient, except: u16) -> Vec<u16> {
    let batches = client
        .run(&format!(
            "SELECT nodeport FROM pg_dist_node WHERE nodeport <> {except} ORDER BY nodeport"
        ))
        .await;
    shardfusion_tests::compare::rows(&batches)
        .iter()
        .map(|p| p.parse().expect("a port"))
        .collect()
}

async fn assert_same_rows(
    client: &mut TestClient,
    sql: &str,
    expected: &[arrow::array::RecordBatch],
) {
    let actual = client.run(sql).await;
    shardfusion_tests::compare::assert_same(sql, &actual, expected, false);
}
