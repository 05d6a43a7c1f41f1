//! DDL and the Citus table functions inside transactions, as a migration tool or a Citus
//! tutorial runs them: `CREATE TABLE` + `create_distributed_table` + loading in one
//! transaction, committed all at once or rolled back without a trace (no table, no shards,
//! no files); `DROP TABLE`, `ALTER TABLE` and distributing a table with rows rolled back;
//! savepoints; a text of several statements as one transaction; and concurrent DDL.

use std::time::Duration;

use shardfusion_tests::shard_files::assert_no_stray_files;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

async fn session_client(cluster: &TestCluster) -> TestClient {
    let mut client = cluster.client().await;
    client.open_session().await.expect("a session");
    client
}

const TABLES: &str = "SELECT coalesce(string_agg(table_name|| ':' || citus_table_type, \
                      ',' ORDER BY table_name), '') FROM citus_tables";

const SCHEMA: &str = "CREATE TABLE companies (id bigserial PRIMARY KEY, name text NOT NULL); \
                      SELECT create_distributed_table('companies', 'id', shard_count => 4); \
                      CREATE TABLE ads (company_id bigint NOT NULL, id bigserial, \
                        title text, PRIMARY KEY (company_id, id)); \
                      SELECT create_distributed_table('ads', 'company_id', \
                        colocate_with => 'companies'); \
                      CREATE TABLE plans (name text PRIMARY KEY, price int); \
                      SELECT create_reference_table('plans')";

const LOAD: &str = "INSERT INTO companies (name) VALUES ('acme'), ('globex'); \
                    INSERT INTO ads (company_id, title) \
                      SELECT id, name || ' ad' FROM companies; \
                    INSERT INTO plans VALUES ('free', 0), ('pro', 10)";

const COUNTS: &str = "SELECT (SELECT count(*) FROM companies) || ' ' || \
                      (SELECT count(*) FROM ads) || ' ' || (SELECT count(*) FROM plans)";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_and_citus_functions_commit_or_roll_back_with_the_transaction() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = session_client(&cluster).await;
        let mut other = cluster.client().await;

        // Rolled back: no table, no shard, no sequence, no file.
        c.run("BEGIN").await;
        c.run(SCHEMA).await;
        c.run(LOAD).await;
        assert_eq!(c.scalar(COUNTS).await, "2 2 2");
        assert_eq!(
            c.scalar(TABLES).await,
            "ads:distributed,companies:distributed,plans:reference"
        );
        // Nobody else sees any of it meanwhile.
        assert_eq!(other.scalar(TABLES).await, "");
        other
            .expect_error("SELECT count(*) FROM companies", Code::NotFound)
            .await;
        c.run("ROLLBACK").await;
        assert_eq!(c.scalar(TABLES).await, "");
        assert_eq!(c.scalar("SELECT count(*) FROM pg_dist_shard").await, "0");
        c.expect_error("SELECT nextval('companies_id_seq')", Code::NotFound)
            .await;
        assert_no_stray_files(&cluster).await;

        // Committed: all of it at once.
        c.run("BEGIN").await;
        c.run(SCHEMA).await;
        c.run(LOAD).await;
        assert_eq!(other.scalar(TABLES).await, "");
        c.run("COMMIT").await;
        assert_eq!(other.scalar(COUNTS).await, "2 2 2");
        assert_eq!(
            other.scalar(TABLES).await,
            "ads:distributed,companies:distributed,plans:reference"
        );
        assert_eq!(
            other
                .scalar(
                    "SELECT count(*) FROM pg_dist_shard s JOIN pg_dist_partition p \
                     USING (logicalrelid) WHERE p.logicalrelid = 'ads'"
                )
                .await,
            "4"
        );
        // The keys hold, and the serial sequences go on from where the transaction left.
        other
            .expect_error("INSERT INTO companies VALUES (1, 'dup')", Code::AlreadyExists)
            .await;
        other
            .run("INSERT INTO companies (name) VALUES ('initech')")
            .await;
        assert_eq!(
            other
                .scalar("SELECT count(DISTINCT id) || ' ' || (max(id) > 2) FROM companies")
                .await,
            "3 true"
        );

        // DROP TABLE rolled back: the table and its rows are back.
        c.run("BEGIN; DROP TABLE ads").await;
        c.expect_error("SELECT count(*) FROM ads", Code::NotFound)
            .await;
        assert_eq!(other.scalar("SELECT count(*) FROM ads").await, "2");
        c.run("ROLLBACK").await;
        assert_eq!(c.scalar("SELECT count(*) FROM ads").await, "2");
        assert_no_stray_files(&cluster).await;

        // ALTER TABLE rolled back, then committed.
        c.run("BEGIN; ALTER TABLE plans ADD COLUMN seats int").await;
        c.run("UPDATE plans SET seats = 5").await;
        assert_eq!(c.scalar("SELECT sum(seats) FROM plans").await, "10");
        c.run("ROLLBACK").await;
        c.expect_error("SELECT seats FROM plans", Code::NotFound)
            .await;
        c.run("BEGIN; ALTER TABLE plans ADD COLUMN seats int; ALTER TABLE plans RENAME TO tiers")
            .await;
        c.run("INSERT INTO tiers VALUES ('team', 20, 3); COMMIT").await;
        assert_eq!(
            other
                .scalar("SELECT string_agg(name || '/' || coalesce(seats, 0), ',' ORDER BY name) FROM tiers")
                .await,
            "free/0,pro/0,team/3"
        );

        // Distributing a table that has rows, rolled back: still local, rows unchanged.
        c.run(
            "CREATE TABLE clicks (company_id bigint, n int); \
             INSERT INTO clicks SELECT v % 3, v FROM generate_series(1, 30) t(v)",
        )
        .await;
        c.run("BEGIN; SELECT create_distributed_table('clicks', 'company_id')")
            .await;
        assert_eq!(c.scalar("SELECT sum(n) FROM clicks").await, "465");
        c.run("ROLLBACK").await;
        assert!(!c.scalar(TABLES).await.contains("clicks"));
        assert_eq!(other.scalar("SELECT sum(n) FROM clicks").await, "465");
        c.run("BEGIN; SELECT create_distributed_table('clicks', 'company_id'); COMMIT")
            .await;
        assert!(c.scalar(TABLES).await.contains("clicks:distributed"));
        assert_eq!(other.scalar("SELECT sum(n) FROM clicks").await, "465");
        assert_no_stray_files(&cluster).await;

        // Distributing a table with rows, then changing some of them in the same transaction:
        // every row survives the COMMIT (the moved files the UPDATE did not touch stay).
        c.run(
            "CREATE TABLE yc (id int, g int); INSERT INTO yc VALUES (1, 1), (2, 2), (3, 3); \
             CREATE TABLE yd (id int, g int); INSERT INTO yd VALUES (1, 1), (2, 2), (3, 3)",
        )
        .await;
        c.run(
            "BEGIN; SELECT create_distributed_table('yc', 'id', shard_count => 4); \
             UPDATE yc SET g = 10 WHERE id = 1; COMMIT",
        )
        .await;
        assert_eq!(
            other.scalar("SELECT string_agg(id || ':' || g, ',' ORDER BY id) FROM yc").await,
            "1:10,2:2,3:3"
        );
        c.run(
            "SELECT create_distributed_table('yd', 'id', shard_count => 4); \
             DELETE FROM yd WHERE id = 1",
        )
        .await;
        assert_eq!(
            other.scalar("SELECT string_agg(id || ':' || g, ',' ORDER BY id) FROM yd").await,
            "2:2,3:3"
        );
        assert_no_stray_files(&cluster).await;

        // Rows the transaction wrote move into the shards with the committed ones.
        c.run("CREATE TABLE staging (k int); INSERT INTO staging VALUES (1)")
            .await;
        c.run("BEGIN; INSERT INTO staging VALUES (2), (3); UPDATE staging SET k = k * 10 WHERE k = 1")
            .await;
        c.run("SELECT create_distributed_table('staging', 'k')").await;
        assert_eq!(c.scalar("SELECT sum(k) FROM staging").await, "15");
        assert_eq!(other.scalar("SELECT sum(k) FROM staging").await, "1");
        c.run("COMMIT").await;
        assert_eq!(other.scalar("SELECT sum(k) FROM staging").await, "15");
        assert!(c.scalar(TABLES).await.contains("staging:distributed"));
        // CREATE TABLE ... AS and distributing it, in one text.
        c.run(
            "CREATE TABLE per_company AS SELECT company_id, count(*) AS n FROM clicks \
             GROUP BY company_id; \
             SELECT create_distributed_table('per_company', 'company_id')",
        )
        .await;
        assert_eq!(other.scalar("SELECT sum(n) FROM per_company").await, "30");
        assert_no_stray_files(&cluster).await;
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn savepoints_texts_and_concurrent_ddl() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = session_client(&cluster).await;
        let mut other = cluster.client().await;

        // ROLLBACK TO SAVEPOINT undoes the DDL after it, and only that.
        c.run("BEGIN; CREATE TABLE a (x int); SAVEPOINT s1").await;
        c.run("CREATE TABLE b (x int); INSERT INTO b VALUES (1); DROP TABLE a")
            .await;
        c.run("ROLLBACK TO SAVEPOINT s1").await;
        c.run("INSERT INTO a VALUES (7); COMMIT").await;
        assert_eq!(other.scalar("SELECT sum(x) FROM a").await, "7");
        other.expect_error("SELECT * FROM b", Code::NotFound).await;
        // A savepoint taken before the first DDL: rolling back to it drops the branch.
        c.run("BEGIN; SAVEPOINT s0; CREATE TABLE b (x int); ROLLBACK TO SAVEPOINT s0")
            .await;
        c.run("INSERT INTO a VALUES (1); COMMIT").await;
        assert_eq!(other.scalar("SELECT sum(x) FROM a").await, "8");
        other.expect_error("SELECT * FROM b", Code::NotFound).await;
        assert_no_stray_files(&cluster).await;

        // A text of several statements is one transaction: its last statement failing
        // leaves no table behind.
        other
            .expect_error(
                "CREATE TABLE t (id int PRIMARY KEY); \
                 SELECT create_distributed_table('t', 'id'); \
                 INSERT INTO t VALUES (1), (1)",
                Code::AlreadyExists,
            )
            .await;
        other.expect_error("SELECT * FROM t", Code::NotFound).await;
        assert_eq!(
            other.scalar("SELECT count(*) FROM pg_dist_shard").await,
            "0"
        );
        assert_no_stray_files(&cluster).await;

        // Two transactions creating different tables both commit; creating the same name,
        // the second to commit gets a serialization failure and keeps nothing.
        let mut d = session_client(&cluster).await;
        c.run("BEGIN; CREATE TABLE one (x int)").await;
        d.run("BEGIN; CREATE TABLE two (x int); CREATE TABLE one (y int)")
            .await;
        other.run("CREATE TABLE three (x int)").await;
        c.run("COMMIT").await;
        let status = d.query("COMMIT").await.expect_err("a conflict");
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        assert!(
            status.message().contains("could not serialize access"),
            "{}",
            status.message()
        );
        let names = "SELECT string_agg(table_name, ',' ORDER BY table_name) \
                     FROM information_schema.tables \
                     WHERE table_name IN ('a', 'b', 'one', 'two', 'three')";
        assert_eq!(other.scalar(names).await, "a,one,three");

        // A table dropped in a transaction while another session inserts into it: the
        // insert is not silently lost — the DROP's commit fails instead.
        other
            .run("CREATE TABLE hot (x int); INSERT INTO hot VALUES (1)")
            .await;
        c.run("BEGIN; DROP TABLE hot").await;
        other.run("INSERT INTO hot VALUES (2)").await;
        let status = c.query("COMMIT").await.expect_err("a conflict");
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        assert_eq!(other.scalar("SELECT sum(x) FROM hot").await, "3");

        // A table dropped and created again under its name, in one transaction.
        c.run("CREATE TABLE again (x int); INSERT INTO again VALUES (1)").await;
        c.run("BEGIN; DROP TABLE again; CREATE TABLE again (y text); INSERT INTO again VALUES ('new'); COMMIT")
            .await;
        assert_eq!(other.scalar("SELECT string_agg(y, ',') FROM again").await, "new");

        // A function that commits on its own, after writes in the same text: refused, and
        // the writes are not kept.
        let message = other
            .expect_error(
                "INSERT INTO again VALUES ('lost'); SELECT rebalance_table_shards()",
                Code::FailedPrecondition,
            )
            .await;
        assert!(message.contains("text of its own"), "{message}");
        assert_eq!(other.scalar("SELECT count(*) FROM again").await, "1");

        // READ ONLY transactions refuse DDL.
        c.run("BEGIN READ ONLY").await;
        c.expect_error("CREATE TABLE ro (x int)", Code::FailedPrecondition)
            .await;
        c.run("ROLLBACK").await;
        assert_no_stray_files(&cluster).await;
    })
    .await
    .expect("within the time limit");
}

/// Flight SQL's own transaction commands (as a Flight SQL client library sends them):
/// statements carrying the transaction id run in it, DDL included, and `EndTransaction`
/// commits or rolls back; an ended transaction's id is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flight_sql_transaction_commands_commit_or_roll_back() {
    use arrow_flight::sql::EndTransaction;
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        let mut other = cluster.client().await;
        for end in [EndTransaction::Rollback, EndTransaction::Commit] {
            let sql = c.flight_sql();
            let tx = sql.begin_transaction().await.expect("a transaction");
            for statement in [
                "CREATE TABLE ft (k bigint)",
                "SELECT create_distributed_table('ft', 'k', shard_count => 4)",
                "INSERT INTO ft VALUES (1), (2)",
            ] {
                (sql.execute_update(statement.into(), Some(tx.clone())).await)
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
            other.expect_error("SELECT * FROM ft", Code::NotFound).await;
            sql.end_transaction(tx.clone(), end).await.expect("ended");
            let refused = sql
                .execute_update("INSERT INTO ft VALUES (3)".into(), Some(tx))
                .await
                .expect_err("an ended transaction");
            assert!(refused.to_string().contains("is not open"), "{refused}");
        }
        assert_eq!(other.scalar("SELECT sum(k) FROM ft").await, "3");
        assert!(
            other
                .scalar("SELECT string_agg(citus_table_type, ',') FROM citus_tables")
                .await
                .contains("distributed")
        );
        assert_no_stray_files(&cluster).await;
    })
    .await
    .expect("within the time limit");
}
