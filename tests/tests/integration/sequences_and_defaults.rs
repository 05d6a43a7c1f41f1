//! Sequences, `serial` columns and `DEFAULT`s as a PostgreSQL application uses them:
//! `bigserial` keys unique across shards and concurrent writers, defaults filling the columns
//! an `INSERT` leaves out, `nextval`/`currval`/`setval`/`lastval` with PostgreSQL's answers,
//! and the errors (unknown sequence, `currval` before `nextval`, an exhausted sequence, a
//! sequence a default still uses).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serial_keys_and_defaults_fill_left_out_columns() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE companies (id bigserial, name text NOT NULL, \
             plan text DEFAULT 'free', seats int DEFAULT 1 + 2, created_at timestamp DEFAULT now())",
        )
        .await;
        c.run("SELECT create_distributed_table('companies', 'id', shard_count => 4)")
            .await;
        c.run("INSERT INTO companies (name) VALUES ('a'), ('b'), ('c')")
            .await;
        assert_eq!(
            c.scalar(
                "SELECT string_agg(id || ':' || name || ':' || plan || ':' || seats, ',' \
                 ORDER BY id) FROM companies WHERE created_at IS NOT NULL"
            )
            .await,
            "1:a:free:3,2:b:free:3,3:c:free:3"
        );
        // DEFAULT in a VALUES row and in UPDATE ... SET stands for the column's default
        // (NULL where there is none).
        c.run("INSERT INTO companies VALUES (DEFAULT, 'd', 'gold', DEFAULT, DEFAULT)")
            .await;
        c.run("INSERT INTO companies (name, plan) VALUES ('e', DEFAULT), ('f', 'x')")
            .await;
        c.run("UPDATE companies SET plan = DEFAULT, seats = 10 WHERE name = 'd'")
            .await;
        assert_eq!(
            c.scalar(
                "SELECT string_agg(id || ':' || name || ':' || plan || ':' || seats, ',' \
                 ORDER BY id) FROM companies WHERE id > 3"
            )
            .await,
            "4:d:free:10,5:e:free:3,6:f:x:3"
        );
        let message = c
            .expect_error(
                "UPDATE companies SET seats = nextval('companies_id_seq') WHERE id = 4",
                Code::Unimplemented,
            )
            .await;
        assert!(message.contains("coordinator"), "{message}");
        c.run("DELETE FROM companies WHERE id > 3").await;
        // A given value wins over the default; an explicit NULL stays NULL.
        c.run("INSERT INTO companies (id, name, plan) VALUES (-100, 'given', NULL)")
            .await;
        assert_eq!(
            c.scalar("SELECT coalesce(plan, 'null') FROM companies WHERE id = -100")
                .await,
            "null"
        );
        // A bulk load takes its keys in one go; an INSERT ... SELECT reading the distributed
        // table itself gets its keys on the coordinator.
        c.run("INSERT INTO companies (name) SELECT 'bulk ' || v FROM generate_series(1, 1000) t(v)")
            .await;
        c.run("INSERT INTO companies (name) SELECT name FROM companies WHERE name LIKE 'bulk%'")
            .await;
        assert_eq!(
            c.scalar("SELECT count(*) || ' ' || count(DISTINCT id) FROM companies")
                .await,
            "2004 2004"
        );

        // Concurrent writers: every key is handed out once.
        let mut writers = Vec::new();
        for w in 0..4 {
            let mut client = cluster.client().await;
            writers.push(tokio::spawn(async move {
                for i in 0..10 {
                    client
                        .run(&format!(
                            "INSERT INTO companies (name) SELECT 'w{w}-{i}-' || v \
                             FROM generate_series(1, 25) t(v)"
                        ))
                        .await;
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        assert_eq!(
            c.scalar("SELECT count(*) || ' ' || count(DISTINCT id) FROM companies")
                .await,
            "3004 3004"
        );

        // COPY with a column list and bulk ingest fill the columns they leave out too.
        let dir = tempfile::tempdir().expect("temp dir");
        let csv = dir.path().join("companies.csv");
        std::fs::write(&csv, "copied 1,team\ncopied 2,\n").expect("csv");
        c.run(&format!(
            "COPY companies (name, plan) FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ))
        .await;
        let names = StringArray::from(vec!["ingested 1", "ingested 2", "ingested 3"]);
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(names)]).expect("batch");
        let ingested = c
            .ingest("companies", futures::stream::iter([Ok(batch)]))
            .await
            .expect("ingest");
        assert_eq!(ingested, 3);
        assert_eq!(
            c.scalar(
                "SELECT string_agg(name || ':' || coalesce(plan, 'null') || ':' || seats, ',' \
                 ORDER BY name) FROM companies WHERE (name LIKE 'copied%' OR name LIKE \
                 'ingested%') AND id > 1003 AND created_at IS NOT NULL"
            )
            .await,
            "copied 1:team:3,copied 2:null:3,ingested 1:free:3,ingested 2:free:3,ingested 3:free:3"
        );
        assert_eq!(
            c.scalar("SELECT count(*) || ' ' || count(DISTINCT id) FROM companies")
                .await,
            "3009 3009"
        );

        // The sequence belongs to the column: it cannot be dropped while the default uses
        // it, and goes with the table.
        let message = c
            .expect_error("DROP SEQUENCE companies_id_seq", Code::FailedPrecondition)
            .await;
        assert!(message.contains("companies"), "{message}");
        c.run("DROP TABLE companies").await;
        c.expect_error("SELECT nextval('companies_id_seq')", Code::NotFound)
            .await;
    })
    .await
    .expect("the test finishes within 240 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_functions_answer_as_in_postgres() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(1).await;
        let mut c = cluster.client().await;
        c.run("CREATE SEQUENCE invoice_no INCREMENT BY 5 START WITH 100")
            .await;
        assert_eq!(c.scalar("SELECT nextval('invoice_no')").await, "100");
        // currval and lastval read what this session's nextval returned.
        assert_eq!(
            c.scalar("SELECT nextval('invoice_no'); SELECT currval('invoice_no') * 10 + lastval()")
                .await,
            (105 * 10 + 105).to_string()
        );
        let message = c
            .expect_error("SELECT currval('invoice_no')", Code::FailedPrecondition)
            .await;
        assert!(
            message.contains("not yet defined in this session"),
            "{message}"
        );
        assert_eq!(c.scalar("SELECT setval('invoice_no', 1000)").await, "1000");
        assert_eq!(c.scalar("SELECT nextval('INVOICE_NO')").await, "1005");
        assert_eq!(
            c.scalar("SELECT setval('invoice_no', 7, false); SELECT nextval('invoice_no')")
                .await,
            "7"
        );
        // One value per row, in order.
        assert_eq!(
            c.scalar(
                "SELECT string_agg(CAST(n AS TEXT), ',' ORDER BY v) FROM \
                 (SELECT v, nextval('invoice_no') AS n FROM generate_series(1, 3) t(v))"
            )
            .await,
            "12,17,22"
        );
        c.expect_error("SELECT nextval('no_such_sequence')", Code::NotFound)
            .await;
        c.expect_error("CREATE SEQUENCE invoice_no", Code::AlreadyExists)
            .await;
        c.run("CREATE SEQUENCE IF NOT EXISTS invoice_no").await;

        // A smallint sequence runs out with PostgreSQL's error, and hands out nothing more.
        c.run("CREATE SEQUENCE tiny AS smallint MAXVALUE 3").await;
        for expected in 1..=3 {
            assert_eq!(
                c.scalar("SELECT nextval('tiny')").await,
                expected.to_string()
            );
        }
        let message = c
            .expect_error("SELECT nextval('tiny')", Code::OutOfRange)
            .await;
        assert!(message.contains("reached maximum value"), "{message}");
        c.expect_error(
            "CREATE SEQUENCE huge AS smallint MAXVALUE 100000",
            Code::InvalidArgument,
        )
        .await;
        c.expect_error("CREATE SEQUENCE spinning CYCLE", Code::Unimplemented)
            .await;
        c.run("CREATE SEQUENCE down INCREMENT BY -1").await;
        assert_eq!(c.scalar("SELECT nextval('down')").await, "-1");
        c.run("DROP SEQUENCE down, tiny").await;
        c.expect_error("SELECT nextval('down')", Code::NotFound)
            .await;
        c.run("DROP SEQUENCE IF EXISTS down").await;
    })
    .await
    .expect("the test finishes within 120 s");
}

/// What a review of the first version found: quoted names, identity columns, `::regclass`,
/// `TRUNCATE ... RESTART IDENTITY`, defaults that cannot work refused at `CREATE TABLE`, a
/// table whose sequence another table's default uses, `nextval` under an aggregate of a
/// distributed table, all-or-nothing `DROP SEQUENCE`, and rights on sequences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_hold_up_to_a_hostile_user() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let cluster = TestCluster::start_with(2, |options| {
            options.password = Some("admin-pw".into());
        })
        .await;
        let mut c = TestClient::connect_as(&cluster.url, "admin", "admin-pw")
            .await
            .expect("admin");
        c.run(r#"CREATE TABLE "Orders" ("Id" bigserial, b int)"#)
            .await;
        c.run(r#"INSERT INTO "Orders" (b) VALUES (1), (2)"#).await;
        assert_eq!(c.scalar(r#"SELECT max("Id") FROM "Orders""#).await, "2");
        assert_eq!(
            c.scalar(r#"SELECT nextval('"Orders_Id_seq"'::regclass)"#)
                .await,
            "3"
        );

        c.run(
            "CREATE TABLE idn (id int GENERATED ALWAYS AS IDENTITY (INCREMENT BY 10 START WITH 5), \
             v int, w bigint GENERATED BY DEFAULT AS IDENTITY)",
        )
        .await;
        c.run("SELECT create_distributed_table('idn', 'v', shard_count => 4)")
            .await;
        c.run("INSERT INTO idn (v) VALUES (1), (2), (3)").await;
        assert_eq!(
            c.scalar("SELECT string_agg(id || '/' || w, ',' ORDER BY id) FROM idn")
                .await,
            "5/1,15/2,25/3"
        );
        c.expect_error(
            "CREATE TABLE g (a int, b int GENERATED ALWAYS AS (a * 2) STORED)",
            Code::Unimplemented,
        )
        .await;
        // nextval under an aggregate of a distributed table runs on the coordinator.
        c.run("CREATE SEQUENCE agg").await;
        assert_eq!(
            c.scalar("SELECT count(*) FILTER (WHERE nextval('agg') > 0) FROM idn")
                .await,
            "3"
        );
        assert_eq!(
            c.scalar("SELECT max(nextval('agg')) FROM idn GROUP BY v % 1")
                .await,
            "6"
        );

        c.run("TRUNCATE idn RESTART IDENTITY").await;
        c.run("INSERT INTO idn (v) VALUES (7)").await;
        assert_eq!(c.scalar("SELECT id || '/' || w FROM idn").await, "5/1");

        for (sql, code) in [
            (
                "CREATE TABLE bad1 (a int DEFAULT 'abc')",
                Code::InvalidArgument,
            ),
            (
                "CREATE TABLE bad2 (a int DEFAULT (SELECT 1))",
                Code::InvalidArgument,
            ),
            (
                "CREATE TABLE bad3 (a int DEFAULT now())",
                Code::InvalidArgument,
            ),
            (
                "CREATE TABLE bad4 (a int DEFAULT b + 1, b int)",
                Code::NotFound,
            ),
        ] {
            let message = c.expect_error(sql, code).await;
            // DataFusion's own planner names the column it cannot find.
            let names_it = message.contains("DEFAULT") || message.contains("No field named b");
            assert!(names_it, "{sql}: {message}");
        }
        c.expect_error("SELECT 1 FROM bad1", Code::NotFound).await;

        // Another table's default uses idn's sequence: idn cannot be dropped.
        c.run("CREATE TABLE borrower (x bigint DEFAULT nextval('idn_w_seq'), y int)")
            .await;
        c.expect_error("DROP TABLE idn", Code::FailedPrecondition)
            .await;
        c.run("DROP TABLE borrower").await;
        c.run("DROP TABLE idn").await;

        c.run("CREATE SEQUENCE keep_me").await;
        c.expect_error("DROP SEQUENCE keep_me, no_such", Code::NotFound)
            .await;
        assert_eq!(c.scalar("SELECT nextval('keep_me')").await, "1");
        c.run("CREATE SEQUENCE lowest AS bigint INCREMENT BY -1 MINVALUE -9223372036854775808")
            .await;
        c.expect_error("SELECT currval('no_such')", Code::NotFound)
            .await;
        assert_eq!(
            c.scalar("SELECT coalesce(setval('keep_me', 10, NULL), -1); SELECT nextval('keep_me')")
                .await,
            "2"
        );

        // Rights follow the owning table; setval and free-standing sequences need a superuser.
        c.run("CREATE TABLE t1 (id serial, name text)").await;
        c.run("CREATE USER bob WITH PASSWORD 'bob-pw'").await;
        c.run("GRANT SELECT ON t1 TO bob").await;
        let mut bob = TestClient::connect_as(&cluster.url, "bob", "bob-pw")
            .await
            .expect("bob");
        for sql in [
            "SELECT setval('t1_id_seq', 1)",
            "SELECT nextval('t1_id_seq')",
            "SELECT nextval('keep_me')",
        ] {
            bob.expect_error(sql, Code::PermissionDenied).await;
        }
        c.run("GRANT INSERT ON t1 TO bob").await;
        bob.run("INSERT INTO t1 (name) VALUES ('by bob')").await;
        assert_eq!(bob.scalar("SELECT nextval('t1_id_seq')").await, "2");
        bob.expect_error("SELECT setval('t1_id_seq', 1)", Code::PermissionDenied)
            .await;
    })
    .await
    .expect("the test finishes within 180 s");
}
