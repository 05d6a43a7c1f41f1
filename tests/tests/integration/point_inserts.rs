//! A point `INSERT` touches only the worker of its shard: with one worker down, rows whose
//! shards live on the other worker are still accepted, and rows for the dead worker's shards
//! are refused — each row's fate is decided by its own shard's node alone.

use std::collections::BTreeMap;
use std::time::Duration;

use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::rows;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_point_insert_needs_only_its_shards_worker() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        client
            .run("CREATE TABLE tenants (id BIGINT NOT NULL, name TEXT)")
            .await;
        client
            .run("SELECT create_distributed_table('tenants', 'id', shard_count => 8)")
            .await;
        // Which node holds each key's shard.
        let mut node_of = BTreeMap::new();
        for id in 1..=16 {
            let shard = client
                .scalar(&format!(
                    "SELECT get_shard_id_for_distribution_column('tenants', {id})"
                ))
                .await;
            let node = client
                .scalar(&format!(
                    "SELECT n.nodeport FROM pg_dist_placement p \
                     JOIN pg_dist_node n ON p.groupid = n.groupid WHERE p.shardid = {shard}"
                ))
                .await;
            node_of.insert(id, node);
        }

        cluster.kill_worker(1);
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for id in 1..=16 {
            let insert = format!("INSERT INTO tenants VALUES ({id}, 'tenant {id}')");
            match client.query(&insert).await {
                Ok(_) => accepted.push(id),
                Err(status) => {
                    assert_eq!(
                        status.code(),
                        tonic::Code::Unavailable,
                        "{insert}: {status}"
                    );
                    refused.push(id);
                }
            }
        }
        assert!(
            !accepted.is_empty() && !refused.is_empty(),
            "{accepted:?} {refused:?}"
        );
        let nodes = |ids: &[i64]| {
            let mut nodes: Vec<&String> = ids.iter().map(|id| &node_of[id]).collect();
            nodes.sort();
            nodes.dedup();
            nodes
        };
        assert_eq!(
            nodes(&accepted).len(),
            1,
            "accepted rows all live on the live worker"
        );
        assert_eq!(
            nodes(&refused).len(),
            1,
            "refused rows all live on the dead worker"
        );
        assert_ne!(nodes(&accepted), nodes(&refused));

        // Reading the live worker's rows still works; after a restart, everything does.
        let first = accepted[0];
        assert_eq!(
            rows(
                &client
                    .run(&format!("SELECT name FROM tenants WHERE id = {first}"))
                    .await
            ),
            [format!("tenant {first}")]
        );
        cluster.restart_worker(1).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match client.query("SELECT count(*) FROM tenants").await {
                Ok(batches) => {
                    assert_eq!(rows(&batches), [accepted.len().to_string()]);
                    break;
                }
                Err(e) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the worker is back: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
    .await
    .expect("the test finishes within 120 s");
}
