//! `PRIMARY KEY` and `UNIQUE` as a multi-tenant schema declares them: enforced on `INSERT`,
//! `COPY`, bulk ingest and `UPDATE`, within a statement and against stored rows, on
//! distributed, reference and local tables, in transactions and between concurrent writers
//! (SQLSTATE 23505 naming the constraint and the key); a failed write leaves nothing behind.
//! A key of a distributed table must include the distribution column, as in Citus. Flight
//! SQL's `GetPrimaryKeys` reports the key.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::sql::CommandGetPrimaryKeys;
use futures::TryStreamExt;
use shardfusion_tests::conflict::sqlstate;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

/// Runs `sql`, which must fail with a unique violation naming `constraint` and `key`.
async fn violates(c: &mut TestClient, sql: &str, constraint: &str, key: &str) {
    let status = c.query(sql).await.expect_err(sql);
    assert_eq!(status.code(), Code::AlreadyExists, "{sql}: {status:?}");
    assert_eq!(sqlstate(&status), Some("23505"), "{sql}: {status:?}");
    let message = status.message();
    assert!(
        message.contains(&format!("\"{constraint}\"")) && message.contains(key),
        "{sql}: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_enforced_on_every_write() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE companies (id bigserial PRIMARY KEY, name text NOT NULL, \
               domain text); \
             CREATE TABLE campaigns (company_id bigint, id bigserial, name text NOT NULL, \
               code text, PRIMARY KEY (company_id, id), \
               CONSTRAINT campaigns_code UNIQUE (company_id, code)); \
             CREATE TABLE countries (code text PRIMARY KEY, name text UNIQUE); \
             CREATE TABLE notes (id bigint PRIMARY KEY, body text); \
             SELECT create_distributed_table('companies', 'id', shard_count => 4); \
             SELECT create_distributed_table('campaigns', 'company_id', colocate_with => 'companies'); \
             SELECT create_reference_table('countries')",
        )
        .await;
        // A key without the distribution column cannot be distributed.
        c.run("CREATE TABLE visits (id bigint, tenant bigint, UNIQUE (id))")
            .await;
        let message = c
            .expect_error(
                "SELECT create_distributed_table('visits', 'tenant')",
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("visits_id_key"), "{message}");

        // What a key may say but is not enforced here is refused, not ignored.
        for (sql, code) in [
            ("CREATE TABLE d (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED)", Code::Unimplemented),
            ("CREATE TABLE d (t int, a int, UNIQUE NULLS NOT DISTINCT (t, a))", Code::Unimplemented),
            ("CREATE TABLE d (a int, b int, PRIMARY KEY (a, a))", Code::InvalidArgument),
            ("CREATE TABLE d (a int, b int, CONSTRAINT k UNIQUE (a), CONSTRAINT k UNIQUE (b))", Code::InvalidArgument),
        ] {
            c.expect_error(sql, code).await;
        }
        c.run("INSERT INTO companies (name) VALUES ('a'), ('b'), ('c')")
            .await;
        c.run(
            "INSERT INTO campaigns (company_id, name, code) VALUES \
             (1, 'spring', 'S1'), (1, 'summer', 'S2'), (2, 'spring', 'S1')",
        )
        .await;
        // Against stored rows, and within one statement.
        violates(
            &mut c,
            "INSERT INTO companies (id, name) VALUES (2, 'again')",
            "companies_pkey",
            "(id)=(2)",
        )
        .await;
        violates(
            &mut c,
            "INSERT INTO companies (id, name) VALUES (10, 'x'), (11, 'y'), (10, 'z')",
            "companies_pkey",
            "(id)=(10)",
        )
        .await;
        violates(
            &mut c,
            "INSERT INTO campaigns (company_id, id, name) VALUES (1, 1, 'dup')",
            "campaigns_pkey",
            "(company_id, id)=(1, 1)",
        )
        .await;
        violates(
            &mut c,
            "INSERT INTO campaigns (company_id, name, code) VALUES (1, 'autumn', 'S2')",
            "campaigns_code",
            "(company_id, code)=(1, S2)",
        )
        .await;
        // The same code in another tenant, and any number of NULL codes, are fine.
        c.run(
            "INSERT INTO campaigns (company_id, name, code) VALUES (2, 'summer', 'S2'), \
             (1, 'n1', NULL), (1, 'n2', NULL)",
        )
        .await;
        // A primary key's columns are NOT NULL.
        let status = c
            .query("INSERT INTO notes (id, body) VALUES (NULL, 'x')")
            .await
            .expect_err("a NULL key");
        assert_eq!(sqlstate(&status), Some("23502"), "{status:?}");
        // Reference and local tables.
        c.run("INSERT INTO countries VALUES ('NL', 'Netherlands'), ('DE', 'Germany')")
            .await;
        violates(
            &mut c,
            "INSERT INTO countries VALUES ('FR', 'Germany')",
            "countries_name_key",
            "(name)=(Germany)",
        )
        .await;
        c.run("INSERT INTO notes VALUES (1, 'one')").await;
        violates(
            &mut c,
            "INSERT INTO notes VALUES (1, 'again')",
            "notes_pkey",
            "(id)=(1)",
        )
        .await;
        // UPDATE: a changed key is checked; an unchanged one is not a duplicate of itself.
        violates(
            &mut c,
            "UPDATE campaigns SET code = 'S1' WHERE company_id = 1 AND name = 'summer'",
            "campaigns_code",
            "(company_id, code)=(1, S1)",
        )
        .await;
        c.run("UPDATE campaigns SET name = upper(name) WHERE company_id = 1")
            .await;
        // COPY and bulk ingest.
        let dir = tempfile::tempdir().expect("temp dir");
        let csv = dir.path().join("companies.csv");
        std::fs::write(&csv, "id,name\n20,t\n3,u\n").expect("csv");
        violates(
            &mut c,
            &format!(
                "COPY companies (id, name) FROM '{}' WITH (FORMAT csv, HEADER true)",
                csv.display()
            ),
            "companies_pkey",
            "(id)=(3)",
        )
        .await;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![30, 31, 1])),
                Arc::new(StringArray::from(vec!["p", "q", "r"])),
            ],
        )
        .expect("batch");
        let status = c
            .ingest("companies", futures::stream::iter([Ok(batch)]))
            .await
            .expect_err("a duplicate ingested");
        assert_eq!(sqlstate(&status), Some("23505"), "{status:?}");
        // Nothing of the failed writes is there.
        assert_eq!(
            c.scalar("SELECT count(*) || ' ' || sum(id) FROM companies").await,
            "3 6"
        );
        assert_eq!(c.scalar("SELECT count(*) FROM campaigns").await, "6");

        // In a transaction: checked against its own writes at once, and against what others
        // committed meanwhile at COMMIT.
        let mut t = cluster.client().await;
        t.open_session().await.expect("a session");
        t.run("BEGIN").await;
        t.run("INSERT INTO companies (id, name) VALUES (40, 'tx')").await;
        violates(
            &mut t,
            "INSERT INTO companies (id, name) VALUES (40, 'tx again')",
            "companies_pkey",
            "(id)=(40)",
        )
        .await;
        t.run("ROLLBACK").await;
        t.run("BEGIN").await;
        t.run("INSERT INTO companies (id, name) VALUES (41, 'first')").await;
        c.run("INSERT INTO companies (id, name) VALUES (41, 'second')").await;
        violates(&mut t, "COMMIT", "companies_pkey", "(id)=(41)").await;
        assert_eq!(
            c.scalar("SELECT name FROM companies WHERE id = 41").await,
            "second"
        );

        // Concurrent writers of one key: exactly one commits.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let mut w = cluster.client().await;
            tasks.push(tokio::spawn(async move {
                w.query(&format!(
                    "INSERT INTO companies (id, name) VALUES (50, 'writer {i}')"
                ))
                .await
                .map(|_| ())
                .map_err(|s| sqlstate(&s).map(str::to_string))
            }));
        }
        let mut committed = 0;
        for task in tasks {
            match task.await.expect("joins") {
                Ok(()) => committed += 1,
                Err(state) => assert_eq!(state.as_deref(), Some("23505")),
            }
        }
        assert_eq!(committed, 1);
        assert_eq!(
            c.scalar("SELECT count(*) FROM companies WHERE id = 50").await,
            "1"
        );

        // ON CONFLICT DO NOTHING keeps the rows without a stored key, one per key.
        let inserted = c
            .update(
                "INSERT INTO companies (id, name) VALUES (1, 'x'), (60, 'new'), (60, 'again') \
                 ON CONFLICT (id) DO NOTHING",
            )
            .await
            .expect("upsert");
        assert_eq!(inserted, 1);
        assert_eq!(
            c.scalar("SELECT name || ' ' || (SELECT count(*) FROM companies WHERE id = 60) FROM companies WHERE id = 1")
                .await,
            "a 1"
        );
        let inserted = c
            .update(
                "INSERT INTO campaigns (company_id, name, code) VALUES (1, 'again', 'S1'), \
                 (3, 'new', 'S1') ON CONFLICT ON CONSTRAINT campaigns_code DO NOTHING",
            )
            .await
            .expect("upsert on a named constraint");
        assert_eq!(inserted, 1);
        let inserted = c
            .update("INSERT INTO countries VALUES ('NL', 'Nederland'), ('BE', 'Germany'), ('BE', 'Belgium') ON CONFLICT DO NOTHING")
            .await
            .expect("upsert on every key");
        assert_eq!(inserted, 1, "NL exists and Germany is taken: only Belgium is new");
        assert_eq!(c.scalar("SELECT name FROM countries WHERE code = 'BE'").await, "Belgium");
        c.expect_error(
            "INSERT INTO companies (id, name) VALUES (1, 'x') ON CONFLICT (name) DO NOTHING",
            Code::InvalidArgument,
        )
        .await;
        let upserted = c
            .update(
                "INSERT INTO companies (id, name) VALUES (1, 'x') ON CONFLICT (id) \
                 DO UPDATE SET name = EXCLUDED.name",
            )
            .await
            .expect("DO UPDATE");
        assert_eq!(upserted, 1);
        assert_eq!(
            c.scalar("SELECT name FROM companies WHERE id = 1").await,
            "x"
        );

        // GetPrimaryKeys reports the key, in key order.
        let asked = CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "campaigns".into(),
        };
        let info = c.flight_sql().get_primary_keys(asked).await.expect("info");
        let mut rows = Vec::new();
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.expect("a ticket");
            let batches: Vec<RecordBatch> = (c.flight_sql().do_get(ticket).await)
                .expect("do_get")
                .try_collect()
                .await
                .expect("rows");
            for batch in batches {
                for row in 0..batch.num_rows() {
                    let text = |name: &str| {
                        let column = batch.column_by_name(name).expect("a column");
                        arrow::util::display::array_value_to_string(column, row).expect("text")
                    };
                    rows.push(format!(
                        "{} {} {}",
                        text("column_name"),
                        text("key_name"),
                        text("key_sequence")
                    ));
                }
            }
        }
        assert_eq!(rows, ["company_id campaigns_pkey 1", "id campaigns_pkey 2"]);
    })
    .await
    .expect("within the time limit");
}
