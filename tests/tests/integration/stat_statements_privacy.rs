//! `shardfusion_stat_statements` keeps normalized, bounded text: literals are `$n`, as in
//! PostgreSQL's `pg_stat_statements`.
//!
//! Regression test for issue 10 ("Also: Memory"): the view kept whole 10 MB statements and
//! showed every client the literal values of the others, passwords in `INSERT`s included.

use std::time::Duration;

use shardfusion_scheduler::monitoring::statement_stats::MAX_QUERY_TEXT_BYTES;
use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::rows;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_statements_keep_normalized_bounded_text() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE accounts (id BIGINT NOT NULL, password TEXT)")
            .await;
        c.run("SELECT create_distributed_table('accounts', 'id', shard_count => 4)")
            .await;

        // A password in an INSERT never shows.
        c.run("INSERT INTO accounts VALUES (1, 'hunter2-s3cret')")
            .await;
        let texts = rows(&c.run("SELECT query FROM shardfusion_stat_statements").await);
        assert!(
            texts.iter().all(|q| !q.contains("hunter2")),
            "a literal password is visible: {texts:?}"
        );
        assert!(
            texts.contains(&"INSERT INTO accounts VALUES ($1, $2)".to_string()),
            "{texts:?}"
        );

        // Two queries differing only in literals are one entry, called twice.
        c.run("SELECT password FROM accounts WHERE id = 1").await;
        c.run("SELECT password FROM accounts WHERE id = 2").await;
        let entry = rows(
            &c.run(
                "SELECT query, calls FROM shardfusion_stat_statements \
                 WHERE query LIKE 'SELECT password FROM accounts%'",
            )
            .await,
        );
        assert_eq!(entry, ["SELECT password FROM accounts WHERE id = $1 | 2"]);

        // A 10 MB INSERT runs, and is kept as one short normalized entry.
        let values: Vec<String> = (0..400_000)
            .map(|i| format!("({}, 'password-{i:012}')", 10 + i))
            .collect();
        let sql = format!("INSERT INTO accounts VALUES {}", values.join(","));
        assert!(sql.len() > 10_000_000, "{}", sql.len());
        // (Through `CommandStatementUpdate`: a query's `FlightInfo` echoes its 10 MB descriptor,
        // more than the client accepts.)
        assert_eq!(
            c.update(&sql).await.expect("the 10 MB INSERT runs"),
            400_000
        );
        assert_eq!(c.scalar("SELECT count(*) FROM accounts").await, "400001");

        // A long statement without literals to squash is cut.
        let columns: Vec<String> = (0..2_000).map(|i| format!("id + {i} AS c{i}")).collect();
        c.run(&format!(
            "SELECT {} FROM accounts WHERE id = 3",
            columns.join(", ")
        ))
        .await;

        let texts = rows(
            &c.run(
                "SELECT query FROM shardfusion_stat_statements \
                 WHERE query LIKE 'INSERT INTO accounts%' OR query LIKE 'SELECT id + $1%'",
            )
            .await,
        );
        assert!(
            texts.contains(&"INSERT INTO accounts VALUES ($1, $2), (...)".to_string()),
            "the bulk INSERT is one collapsed entry: {texts:?}"
        );
        let longest = texts.iter().map(String::len).max().unwrap_or(0);
        assert!(longest <= MAX_QUERY_TEXT_BYTES, "{longest} bytes kept");
        assert!(
            texts
                .iter()
                .any(|q| q.starts_with("SELECT id + $1 AS c0") && q.ends_with("...")),
            "{texts:?}"
        );
        let all = rows(&c.run("SELECT query FROM shardfusion_stat_statements").await);
        assert!(
            all.iter().all(|q| !q.contains("password-0")),
            "a literal value is visible"
        );
        cluster.shutdown().await;
    })
    .await
    .expect("finished in time");
}
