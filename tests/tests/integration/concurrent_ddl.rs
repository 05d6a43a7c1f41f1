//! DDL statements running at the same time leave a consistent catalog: distributing tables
//! while their colocation group's last table is dropped never fails with a storage error,
//! tables distributed together by default end up co-located, concurrent `ADD COLUMN`s are all
//! kept, and a `NOT NULL` column never appears over rows an INSERT committed meanwhile.

use std::time::Duration;

use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::rows;
use shardfusion_tests::conflict::is_retryable_conflict;
use tonic::{Code, Status};

const ROUNDS: usize = 100;

fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributing_while_dropping_keeps_the_catalog_consistent() {
    tokio::time::timeout(Duration::from_secs(100), distribute_and_drop())
        .await
        .expect("the test finishes within its time bound");
}

/// Round `i` drops the tables of round `i - 1` while it distributes its own two tables by
/// default colocation, so a colocation group loses its last table while new tables pick it.
async fn distribute_and_drop() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        for t in ["a", "b"] {
            c.run(&format!(
                "CREATE TABLE {t}_{round} (k BIGINT NOT NULL, v TEXT)"
            ))
            .await;
        }
        let mut statements = vec![
            format!("SELECT create_distributed_table('a_{round}', 'k', shard_count => 4)"),
            format!("SELECT create_distributed_table('b_{round}', 'k', shard_count => 4)"),
        ];
        if round > 0 {
            let previous = round - 1;
            statements.push(format!("DROP TABLE a_{previous}"));
            statements.push(format!("DROP TABLE b_{previous}"));
        }
        let tasks: Vec<_> = statements
            .into_iter()
            .map(|sql| {
                let url = cluster.url.clone();
                tokio::spawn(async move {
                    let mut client = shardfusion_tests::TestClient::connect(&url).await;
                    let outcome = client.query(&sql).await;
                    (sql, outcome)
                })
            })
            .collect();
        for task in tasks {
            let (sql, outcome) = task.await.expect("statement task");
            if let Err(status) = outcome {
                failures.push(format!("round {round}: {sql}: {}", describe(&status)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "concurrent DDL on different tables must all succeed: {failures:#?}"
    );

    let last = ROUNDS - 1;
    assert_eq!(
        rows(
            &c.run("SELECT logicalrelid FROM pg_dist_partition ORDER BY logicalrelid")
                .await
        ),
        vec![format!("a_{last}"), format!("b_{last}")]
    );
    // Every table's group exists, with the table's shard count; no group is left without a
    // table; and the two tables distributed together by default share one group.
    assert_eq!(
        c.scalar(
            "SELECT count(*) FROM pg_dist_partition p JOIN pg_dist_colocation g \
             ON p.colocationid = g.colocationid WHERE g.shardcount = 4"
        )
        .await,
        "2"
    );
    assert_eq!(
        c.scalar("SELECT count(*) FROM pg_dist_colocation").await,
        "1",
        "{:?}",
        rows(&c.run("SELECT * FROM pg_dist_colocation").await)
    );
    assert_eq!(c.scalar("SELECT count(*) FROM pg_dist_shard").await, "8");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_add_columns_are_all_kept() {
    tokio::time::timeout(Duration::from_secs(60), add_columns())
        .await
        .expect("the test finishes within its time bound");
}

async fn add_columns() {
    const COLUMNS: usize = 4;
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client().await;
    for round in 0..20 {
        let table = format!("wide_{round}");
        c.run(&format!("CREATE TABLE {table} (k BIGINT NOT NULL)"))
            .await;
        let tasks: Vec<_> = (0..COLUMNS)
            .map(|i| {
                let url = cluster.url.clone();
                let sql = format!("ALTER TABLE {table} ADD COLUMN c{i} BIGINT");
                tokio::spawn(async move {
                    let mut client = shardfusion_tests::TestClient::connect(&url).await;
                    client.query(&sql).await.map_err(|s| describe(&s))
                })
            })
            .collect();
        for task in tasks {
            task.await
                .expect("ALTER task")
                .expect("ADD COLUMN of a new column succeeds");
        }
        let (schema, _) = c
            .query_with_schema(&format!("SELECT * FROM {table}"))
            .await
            .expect("select");
        assert_eq!(
            schema.fields().len(),
            COLUMNS + 1,
            "round {round}: every added column is kept: {schema:?}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_null_column_never_covers_rows_inserted_meanwhile() {
    tokio::time::timeout(Duration::from_secs(90), not_null_during_insert())
        .await
        .expect("the test finishes within its time bound");
}

/// `ADD COLUMN ... NOT NULL` is only allowed on an empty table; an INSERT that commits while
/// it runs must not leave rows without a value in it: one of the two is refused.
async fn not_null_during_insert() {
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    for (round, distributed) in [false, true, false, true].into_iter().enumerate() {
        let table = format!("t_{round}");
        c.run(&format!("CREATE TABLE {table} (k BIGINT NOT NULL)"))
            .await;
        if distributed {
            c.run(&format!("SELECT create_distributed_table('{table}', 'k')"))
                .await;
        }
        let url = cluster.url.clone();
        let insert_sql =
            format!("INSERT INTO {table} SELECT value FROM generate_series(1, 1000000)");
        let insert = tokio::spawn(async move {
            let mut client = shardfusion_tests::TestClient::connect(&url).await;
            client.update(&insert_sql).await
        });
        // The INSERT has planned against the empty table and is writing.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let alter = c
            .query(&format!("ALTER TABLE {table} ADD COLUMN n BIGINT NOT NULL"))
            .await;
        let insert = insert.await.expect("insert task");
        match (&insert, &alter) {
            (Ok(_), Ok(_)) => panic!(
                "round {round}: both the INSERT and ADD COLUMN NOT NULL succeeded, leaving \
                 {} rows without a value in a NOT NULL column",
                insert.as_ref().map(|n| *n).unwrap_or_default()
            ),
            (Err(status), Ok(_)) => assert!(
                is_retryable_conflict(status),
                "round {round}: the INSERT is refused as a retryable conflict: {}",
                describe(status)
            ),
            (Ok(_), Err(status)) => assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "round {round}: ADD COLUMN NOT NULL on a table with rows: {}",
                describe(status)
            ),
            (Err(a), Err(b)) => panic!(
                "round {round}: one of them must succeed: {} / {}",
                describe(a),
                describe(b)
            ),
        }
        let expected = if insert.is_ok() { "1000000" } else { "0" };
        assert_eq!(
            c.scalar(&format!("SELECT count(*) FROM {table}")).await,
            expected
        );
    }
    cluster.shutdown().await;
}
