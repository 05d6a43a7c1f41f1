//! Multi-statement transactions as a PostgreSQL application uses them: `BEGIN` ... `COMMIT` /
//! `ROLLBACK` in a session (its cookie), savepoints, an aborted transaction refusing
//! statements until `ROLLBACK`, a text of several statements committing all or nothing,
//! snapshot reads while another session commits, and concurrent writers of one shard whose
//! final state is exactly their acknowledged commits.

use std::time::Duration;

use shardfusion_tests::conflict::is_retryable_conflict;
use shardfusion_tests::shard_files::assert_no_stray_files;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

/// A client in a session of its own (the cookie sent back), as ADBC with its cookie
/// middleware.
async fn session_client(cluster: &TestCluster) -> TestClient {
    let mut client = cluster.client().await;
    client.open_session().await.expect("a session");
    client
}

async fn accounts(cluster: &TestCluster) -> TestClient {
    let mut c = cluster.client().await;
    c.run("CREATE TABLE accounts (id bigint NOT NULL, tenant bigint, balance bigint)")
        .await;
    c.run("SELECT create_distributed_table('accounts', 'tenant', shard_count => 4)")
        .await;
    c.run("INSERT INTO accounts SELECT v, v % 3, 100 * v FROM generate_series(1, 10) t(v)")
        .await;
    c
}

const SUMMARY: &str = "SELECT count(*) || ' ' || coalesce(sum(balance), 0) FROM accounts";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn explicit_transactions_commit_or_roll_back_their_writes() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut other = accounts(&cluster).await;
        let mut c = session_client(&cluster).await;
        assert_eq!(other.scalar(SUMMARY).await, "10 5500");

        // Writes inside a transaction are seen by it, by nobody else, and gone at ROLLBACK.
        c.run("BEGIN").await;
        c.run("INSERT INTO accounts VALUES (11, 1, 1), (12, 2, 2)")
            .await;
        c.run("UPDATE accounts SET balance = balance + 1 WHERE tenant = 1")
            .await;
        c.run("DELETE FROM accounts WHERE id = 3").await;
        assert_eq!(c.scalar(SUMMARY).await, "11 5208");
        assert_eq!(other.scalar(SUMMARY).await, "10 5500");
        c.run("ROLLBACK").await;
        assert_eq!(c.scalar(SUMMARY).await, "10 5500");
        assert_no_stray_files(&cluster).await;

        // COMMIT makes them visible to everyone at once.
        c.run("START TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await;
        c.run("INSERT INTO accounts VALUES (11, 1, 1), (12, 2, 2)")
            .await;
        c.run("UPDATE accounts SET balance = balance * 2 WHERE id IN (11, 1)")
            .await;
        c.run("TRUNCATE accounts").await;
        c.run("INSERT INTO accounts VALUES (20, 0, 5)").await;
        assert_eq!(other.scalar(SUMMARY).await, "10 5500");
        c.run("COMMIT").await;
        assert_eq!(other.scalar(SUMMARY).await, "1 5");
        assert_no_stray_files(&cluster).await;

        // Savepoints: what came after one is undone, what came before stays.
        c.run("BEGIN; INSERT INTO accounts VALUES (21, 1, 10); SAVEPOINT s1")
            .await;
        c.run("INSERT INTO accounts VALUES (22, 2, 100)").await;
        c.run("DELETE FROM accounts WHERE id = 20").await;
        assert_eq!(c.scalar(SUMMARY).await, "2 110");
        c.run("ROLLBACK TO SAVEPOINT s1").await;
        assert_eq!(c.scalar(SUMMARY).await, "2 15");
        c.run("RELEASE SAVEPOINT s1; COMMIT").await;
        assert_eq!(other.scalar(SUMMARY).await, "2 15");

        // A failed statement aborts the transaction: everything but ROLLBACK is refused,
        // and COMMIT rolls it back and says so.
        c.run("BEGIN").await;
        c.run("INSERT INTO accounts VALUES (30, 0, 1000)").await;
        c.expect_error("SELECT * FROM no_such_table", Code::NotFound)
            .await;
        let message = c.expect_error("SELECT 1", Code::FailedPrecondition).await;
        assert!(
            message.contains("current transaction is aborted"),
            "{message}"
        );
        let message = c.expect_error("COMMIT", Code::FailedPrecondition).await;
        assert!(message.contains("rolled back"), "{message}");
        assert_eq!(c.scalar(SUMMARY).await, "2 15");
        // ROLLBACK TO SAVEPOINT makes an aborted transaction usable again.
        c.run("BEGIN; SAVEPOINT a; INSERT INTO accounts VALUES (31, 1, 1)")
            .await;
        c.expect_error(
            "INSERT INTO accounts VALUES (NULL, 1, 1)",
            Code::InvalidArgument,
        )
        .await;
        c.run("ROLLBACK TO a; INSERT INTO accounts VALUES (32, 2, 2); COMMIT")
            .await;
        assert_eq!(other.scalar(SUMMARY).await, "3 17");

        // Errors found before a statement runs (syntax, an unknown table) abort it too; ABORT
        // is ROLLBACK.
        c.run("BEGIN; INSERT INTO accounts VALUES (33, 0, 1000)")
            .await;
        c.expect_error("SELEC 1", Code::InvalidArgument).await;
        c.expect_error("SELECT 1", Code::FailedPrecondition).await;
        c.run("ABORT").await;
        c.run("BEGIN; INSERT INTO accounts VALUES (33, 0, 1000)")
            .await;
        c.expect_error(
            "SELECT * FROM accounts WHERE id = 1 / 0",
            Code::InvalidArgument,
        )
        .await;
        c.expect_error("SELECT 1", Code::FailedPrecondition).await;
        c.run("ROLLBACK").await;
        assert_eq!(other.scalar(SUMMARY).await, "3 17");
        // EXPLAIN ANALYZE of an INSERT runs it in the transaction.
        c.run("BEGIN; EXPLAIN ANALYZE INSERT INTO accounts VALUES (34, 0, 1000)")
            .await;
        assert_eq!(c.scalar(SUMMARY).await, "4 1017");
        assert_eq!(other.scalar(SUMMARY).await, "3 17");
        c.run("ROLLBACK").await;
        // A SET in a rolled-back transaction is undone.
        c.run("BEGIN; SET statement_timeout = '9s'").await;
        assert_eq!(c.scalar("SHOW statement_timeout").await, "9s");
        c.run("ROLLBACK").await;
        assert_eq!(c.scalar("SHOW statement_timeout").await, "0");

        // Moving shards commits on its own: refused inside a transaction block (as in
        // Citus), which it aborts.
        c.run("BEGIN").await;
        let message = c
            .expect_error("SELECT rebalance_table_shards()", Code::FailedPrecondition)
            .await;
        assert!(
            message.contains("rebalance_table_shards() cannot run inside a transaction block"),
            "{message}"
        );
        c.run("ROLLBACK").await;
        c.expect_error("SAVEPOINT x", Code::FailedPrecondition)
            .await;
        // SERIALIZABLE is refused rather than silently weakened; READ ONLY is enforced.
        c.expect_error("BEGIN ISOLATION LEVEL SERIALIZABLE", Code::Unimplemented)
            .await;
        c.run("BEGIN READ ONLY").await;
        c.expect_error("DELETE FROM accounts", Code::FailedPrecondition)
            .await;
        c.run("ROLLBACK").await;
        assert_eq!(other.scalar(SUMMARY).await, "3 17");
        assert_no_stray_files(&cluster).await;
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_text_of_several_statements_commits_all_or_nothing() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE companies (id bigint NOT NULL, name text NOT NULL); \
             CREATE TABLE campaigns (company_id bigint NOT NULL, id bigint NOT NULL, name text); \
             CREATE TABLE plans (name text NOT NULL, price int); \
             SELECT create_distributed_table('companies', 'id', shard_count => 4); \
             SELECT create_distributed_table('campaigns', 'company_id', colocate_with => 'companies'); \
             SELECT create_reference_table('plans')",
        )
        .await;
        let totals = "SELECT (SELECT count(*) FROM companies) || ' ' || \
                      (SELECT count(*) FROM campaigns) || ' ' || (SELECT count(*) FROM plans)";
        // The third statement fails: nothing of the first two is kept.
        c.expect_error(
            "INSERT INTO companies VALUES (1, 'acme'), (2, 'globex'); \
             INSERT INTO plans VALUES ('free', 0); \
             INSERT INTO campaigns VALUES (1, 1, 'x'), (2, NULL, 'y')",
            Code::InvalidArgument,
        )
        .await;
        assert_eq!(c.scalar(totals).await, "0 0 0");
        // All three succeed: all are kept, and the text's last query sees them.
        assert_eq!(
            c.scalar(
                "INSERT INTO companies VALUES (1, 'acme'), (2, 'globex'); \
                 INSERT INTO plans VALUES ('free', 0); \
                 INSERT INTO campaigns VALUES (1, 1, 'x'), (2, 2, 'y'), (2, 3, 'z'); \
                 UPDATE campaigns SET name = upper(name) WHERE company_id = 2; \
                 SELECT string_agg(name, ',' ORDER BY id) FROM campaigns"
            )
            .await,
            "x,Y,Z"
        );
        assert_eq!(c.scalar(totals).await, "2 3 1");
        // BEGIN ... COMMIT in one text, without a session.
        c.run("BEGIN; DELETE FROM campaigns WHERE id = 3; COMMIT").await;
        assert_eq!(c.scalar(totals).await, "2 2 1");
        // A failing last query discards the writes before it.
        c.expect_error(
            "INSERT INTO plans VALUES ('gold', 10); SELECT 1 / (SELECT count(*) - 2 FROM plans)",
            Code::InvalidArgument,
        )
        .await;
        assert_eq!(c.scalar(totals).await, "2 2 1");
        // A transaction left open by a client that drops its session cookie stays invisible
        // to others, and is rolled back once idle for idle_in_transaction_session_timeout.
        c.run(
            "SET idle_in_transaction_session_timeout = '300ms'; BEGIN; \
             DELETE FROM campaigns; INSERT INTO plans VALUES ('gold', 10)",
        )
        .await;
        assert_eq!(c.scalar(totals).await, "2 2 1");
        assert_no_stray_files(&cluster).await;
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_reads_its_snapshot_while_others_commit() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut other = accounts(&cluster).await;
        let mut c = session_client(&cluster).await;
        c.run("BEGIN").await;
        assert_eq!(c.scalar(SUMMARY).await, "10 5500");
        // Another session commits inserts, an update and a delete meanwhile.
        other.run("INSERT INTO accounts VALUES (11, 1, 1)").await;
        other
            .run("UPDATE accounts SET balance = 0 WHERE tenant = 2")
            .await;
        other.run("DELETE FROM accounts WHERE id = 1").await;
        let now = other.scalar(SUMMARY).await;
        assert_ne!(now, "10 5500");
        // The transaction still reads the state it began with, plus its own writes.
        assert_eq!(c.scalar(SUMMARY).await, "10 5500");
        c.run("INSERT INTO accounts VALUES (50, 0, 50)").await;
        assert_eq!(c.scalar(SUMMARY).await, "11 5550");
        c.run("COMMIT").await;
        // Its insert did not overlap their changes: both are kept.
        let after = c.scalar(SUMMARY).await;
        let (count, sum) = now.split_once(' ').expect("two numbers");
        let expected = format!(
            "{} {}",
            count.parse::<i64>().expect("a count") + 1,
            sum.parse::<i64>().expect("a sum") + 50
        );
        assert_eq!(after, expected);
        // An update of rows another session changed after the snapshot: serialization failure.
        c.run("BEGIN").await;
        assert_eq!(
            c.scalar("SELECT count(*) FROM accounts WHERE tenant = 1")
                .await,
            "4"
        );
        other
            .run("UPDATE accounts SET balance = balance + 1 WHERE tenant = 1")
            .await;
        c.run("UPDATE accounts SET balance = -1 WHERE tenant = 1")
            .await;
        let status = c
            .query("COMMIT")
            .await
            .expect_err("a serialization failure");
        assert!(is_retryable_conflict(&status), "{status:?}");
        assert_eq!(
            other
                .scalar("SELECT min(balance) FROM accounts WHERE tenant = 1")
                .await,
            "2"
        );
        assert_no_stray_files(&cluster).await;
    })
    .await
    .expect("within the time limit");
}

/// Eight sessions each add one to a shared counter row and log the move, in transactions on
/// one shard, retrying a commit refused with a serialization failure (which changes nothing).
/// The final state is exactly the acknowledged commits: no write lost, none applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_exactly_their_acknowledged_commits() {
    tokio::time::timeout(Duration::from_secs(400), async {
        let cluster = TestCluster::start(2).await;
        let mut setup = cluster.client().await;
        setup
            .run(
                "CREATE TABLE counters (id bigint NOT NULL, v bigint); \
                 CREATE TABLE moves (counter bigint NOT NULL, writer int, n int); \
                 SELECT create_distributed_table('counters', 'id', shard_count => 4); \
                 SELECT create_distributed_table('moves', 'counter', colocate_with => 'counters'); \
                 INSERT INTO counters VALUES (1, 0)",
            )
            .await;
        const WRITERS: usize = 8;
        const ROUNDS: usize = 3;
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let mut c = session_client(&cluster).await;
            tasks.push(tokio::spawn(async move {
                let mut refused = 0;
                for n in 0..ROUNDS {
                    loop {
                        c.run("BEGIN").await;
                        c.run("UPDATE counters SET v = v + 1 WHERE id = 1").await;
                        c.run(&format!("INSERT INTO moves VALUES (1, {writer}, {n})"))
                            .await;
                        match c.query("COMMIT").await {
                            Ok(_) => break,
                            Err(status) => {
                                assert!(is_retryable_conflict(&status), "{status:?}");
                                refused += 1;
                                assert!(refused < 500, "writer {writer} never commits");
                            }
                        }
                    }
                }
                refused
            }));
        }
        let mut refused = 0;
        for task in tasks {
            refused += task.await.expect("a writer");
        }
        let committed = WRITERS * ROUNDS;
        eprintln!("{committed} commits acknowledged, {refused} serialization failures");
        assert!(refused > 0, "8 writers of one row never collided");
        assert_eq!(
            setup
                .scalar(
                    "SELECT v || ' ' || (SELECT count(*) || ' ' || count(DISTINCT (writer, n)) \
                     FROM moves) FROM counters"
                )
                .await,
            format!("{committed} {committed} {committed}")
        );
        assert_no_stray_files(&cluster).await;
    })
    .await
    .expect("within the time limit");
}
