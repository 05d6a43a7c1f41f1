//! Citus's administration functions: colocation rules, moving existing rows into shards,
//! `get_shard_id_for_distribution_column`, `citus_add_node`, through both Flight SQL paths.

use shardfusion_common::auth::ClusterSecret;
use shardfusion_executor::WorkerConfig;
use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::rows;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colocation_follows_citus_rules() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    for t in ["a", "b", "c", "d"] {
        c.run(&format!("CREATE TABLE {t} (k BIGINT NOT NULL, v TEXT)"))
            .await;
    }
    c.run("CREATE TABLE s (k TEXT NOT NULL)").await;
    c.run("SELECT create_distributed_table('a', 'k', shard_count => 4)")
        .await;
    // Same shard count and column type: co-located by default.
    c.run("SELECT create_distributed_table('b', 'k', shard_count => 4)")
        .await;
    c.run("SELECT create_distributed_table('c', 'k', shard_count => 4, colocate_with => 'none')")
        .await;
    c.run("SELECT create_distributed_table('d', 'k', colocate_with => 'a')")
        .await;
    let groups = rows(
        &c.run("SELECT logicalrelid, colocationid FROM pg_dist_partition ORDER BY logicalrelid")
            .await,
    );
    let id = |t: &str| {
        groups
            .iter()
            .find(|r| r.starts_with(&format!("{t} |")))
            .cloned()
            .unwrap_or_default()
            .rsplit(" | ")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(id("a"), id("b"));
    assert_eq!(id("a"), id("d"));
    assert_ne!(id("a"), id("c"));
    // Co-located shards have the same ranges on the same nodes.
    let placed = |t: &str| {
        format!(
            "SELECT s.shardminvalue, p.groupid FROM pg_dist_shard s JOIN pg_dist_placement p ON s.shardid = p.shardid WHERE s.logicalrelid = '{t}' ORDER BY s.shardminvalue"
        )
    };
    assert_eq!(
        rows(&c.run(&placed("a")).await),
        rows(&c.run(&placed("d")).await)
    );
    // Different column type: refused with a reason.
    let m = c
        .expect_error(
            "SELECT create_distributed_table('s', 'k', colocate_with => 'a')",
            Code::InvalidArgument,
        )
        .await;
    assert!(m.contains("types differ"), "{m}");
    let m = c
        .expect_error(
            "SELECT create_distributed_table('a', 'k')",
            Code::AlreadyExists,
        )
        .await;
    assert!(m.contains("already distributed"), "{m}");
    c.expect_error(
        "SELECT create_distributed_table('s', 'k', shard_count => 0)",
        Code::InvalidArgument,
    )
    .await;
    assert_eq!(
        c.scalar("SELECT count(*) FROM pg_dist_colocation").await,
        "2"
    );
    assert_eq!(
        c.scalar("SELECT count(*) FROM citus_shards WHERE table_name = 'a'")
            .await,
        "4"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributing_moves_existing_rows_and_routes_by_key() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    c.run("CREATE TABLE events (tenant TEXT NOT NULL, n INT)")
        .await;
    c.run("INSERT INTO events SELECT 'tenant-' || (value % 50), CAST(value AS INT) FROM generate_series(1, 2000)")
        .await;
    // Through the update path, as JDBC's executeUpdate would send it.
    c.update("SELECT create_distributed_table('events', 'tenant', shard_count => 5)")
        .await
        .expect("distribute through CommandStatementUpdate");
    assert_eq!(c.scalar("SELECT count(*) FROM events").await, "2000");
    assert_eq!(c.scalar("SELECT sum(n) FROM events").await, "2001000");
    assert_eq!(
        c.scalar("SELECT citus_table_type FROM citus_tables WHERE table_name = 'events'")
            .await,
        "distributed"
    );
    // Every row lives in the shard whose range holds its key: each tenant is in one shard.
    for tenant in ["tenant-0", "tenant-7", "tenant-49"] {
        let shard = c
            .scalar(&format!(
                "SELECT get_shard_id_for_distribution_column('events', '{tenant}')"
            ))
            .await;
        let count = c
            .scalar(&format!(
                "SELECT count(*) FROM events WHERE tenant = '{tenant}'"
            ))
            .await;
        assert_eq!(count, "40");
        let shard_rows: u64 = cluster
            .coordinator()
            .cluster()
            .catalog
            .table("events")
            .expect("events")
            .shards
            .iter()
            .find(|s| s.shard_id.to_string() == shard)
            .expect("shard")
            .placements[0]
            .row_count();
        assert!(shard_rows >= 40, "{tenant} must be in shard {shard}");
    }
    let m = c
        .expect_error(
            "SELECT get_shard_id_for_distribution_column('events')",
            Code::InvalidArgument,
        )
        .await;
    assert!(m.contains("NULL"), "{m}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citus_add_node_adds_a_reachable_worker() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = WorkerConfig {
        data_dir: dir.path().to_path_buf(),
        storage: None,
        secret: ClusterSecret::new("test-cluster-secret"),
        tls: None,
        cluster_tls: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(shardfusion_executor::serve(listener, config, async {
        let _ = stopped.await;
    }));
    assert_eq!(
        c.scalar(&format!("SELECT citus_add_node('127.0.0.1', {port})"))
            .await,
        "2"
    );
    // Adding it again returns the same node.
    assert_eq!(
        c.scalar(&format!("SELECT citus_add_node('127.0.0.1', {port})"))
            .await,
        "2"
    );
    assert_eq!(c.scalar("SELECT count(*) FROM pg_dist_node").await, "2");
    c.run("CREATE TABLE t (k INT NOT NULL)").await;
    c.run("SELECT create_distributed_table('t', 'k', shard_count => 4)")
        .await;
    assert_eq!(
        c.scalar("SELECT count(DISTINCT groupid) FROM pg_dist_placement")
            .await,
        "2"
    );
    c.run("INSERT INTO t SELECT CAST(value AS INT) FROM generate_series(1, 100)")
        .await;
    assert_eq!(c.scalar("SELECT count(*) FROM t").await, "100");
    // Nothing listens on port 1.
    let m = c
        .expect_error("SELECT citus_add_node('127.0.0.1', 1)", Code::Unavailable)
        .await;
    assert!(m.contains("cannot add the node"), "{m}");
    assert_eq!(c.scalar("SELECT count(*) FROM pg_dist_node").await, "2");
    let _ = stop.send(());
    let _ = worker.await;
    cluster.shutdown().await;
}
