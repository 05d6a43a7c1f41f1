//! Writes whose changes depend on other rows, as a Citus application runs them:
//! `UPDATE ... FROM` and `DELETE ... USING` with co-located and reference tables, `RETURNING`
//! on `UPDATE` and `DELETE`, and `INSERT ... ON CONFLICT (key) DO UPDATE`. The tables
//! afterwards are compared with single-node DataFusion computing the same change as a query.

use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use shardfusion_tests::compare::{assert_same, rows};
use shardfusion_tests::conflict::sqlstate;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

const ACCOUNTS: &str = "SELECT CAST(v % 20 AS BIGINT) AS company_id, CAST(v AS BIGINT) AS id, \
     CAST(v % 5 AS BIGINT) AS plan, CAST(v * 10 AS BIGINT) AS balance, 'acct ' || v AS name \
     FROM generate_series(1, 2000) t(v)";
const PAYMENTS: &str = "SELECT CAST((v % 2000 + 1) % 20 AS BIGINT) AS company_id, \
     CAST(v % 2000 + 1 AS BIGINT) AS account_id, CAST(v % 13 AS BIGINT) AS amount \
     FROM generate_series(1, 3000) t(v)";
const PLANS: &str = "SELECT CAST(v AS BIGINT) AS plan, 'plan ' || v AS name, \
     CAST(v * 7 AS BIGINT) AS fee FROM generate_series(0, 4) t(v)";

async fn single_node(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs")
}

async fn single_count(ctx: &SessionContext, sql: &str) -> i64 {
    rows(&single_node(ctx, sql).await)[0]
        .parse()
        .expect("a count")
}

/// The cluster's answer to `sql` must be single-node DataFusion's.
async fn same(c: &mut TestClient, single: &SessionContext, sql: &str) {
    let expected = single_node(single, sql).await;
    assert_same(sql, &c.run(sql).await, &expected, true);
}

/// Accounts keyed `(company_id, id)` and payments, both distributed by `company_id` (so
/// co-located), and plans, a reference table; the same rows in `single`.
async fn load(c: &mut TestClient, single: &SessionContext) {
    c.run(
        "CREATE TABLE accounts (company_id BIGINT NOT NULL, id BIGINT NOT NULL, \
         plan BIGINT NOT NULL, balance BIGINT NOT NULL, name TEXT, \
         PRIMARY KEY (company_id, id))",
    )
    .await;
    c.run("SELECT create_distributed_table('accounts', 'company_id', shard_count => 4)")
        .await;
    c.run(
        "CREATE TABLE payments (company_id BIGINT NOT NULL, account_id BIGINT NOT NULL, \
         amount BIGINT NOT NULL)",
    )
    .await;
    c.run("SELECT create_distributed_table('payments', 'company_id', colocate_with => 'accounts')")
        .await;
    c.run("CREATE TABLE plans (plan BIGINT NOT NULL PRIMARY KEY, name TEXT, fee BIGINT)")
        .await;
    c.run("SELECT create_reference_table('plans')").await;
    for (table, rows) in [
        ("accounts", ACCOUNTS),
        ("payments", PAYMENTS),
        ("plans", PLANS),
    ] {
        c.run(&format!("INSERT INTO {table} {rows}")).await;
        single_node(single, &format!("CREATE TABLE {table} AS {rows}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn update_from_and_delete_using_change_what_single_node_computes() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        let single = SessionContext::new();
        load(&mut c, &single).await;

        // A co-located aggregate: each account takes its payments' total.
        let totals = "SELECT company_id, account_id, sum(amount) AS total FROM payments \
                      GROUP BY company_id, account_id";
        let matched = single_count(&single, &format!("SELECT count(*) FROM ({totals})")).await;
        let updated = c
            .update(&format!(
                "UPDATE accounts AS a SET balance = a.balance + p.total FROM ({totals}) AS p \
                 WHERE a.company_id = p.company_id AND a.id = p.account_id"
            ))
            .await
            .expect("update ... from");
        assert_eq!(updated, matched);
        single_node(
            &single,
            &format!(
                "CREATE OR REPLACE TABLE accounts AS SELECT a.company_id, a.id, a.plan, \
                 a.balance + coalesce(p.total, 0) AS balance, a.name FROM accounts a \
                 LEFT JOIN ({totals}) p ON a.company_id = p.company_id AND a.id = p.account_id"
            ),
        )
        .await;
        same(
            &mut c,
            &single,
            "SELECT * FROM accounts ORDER BY company_id, id",
        )
        .await;

        // A reference table, named by the target's own name.
        let expensive = single_count(
            &single,
            "SELECT count(*) FROM accounts a JOIN plans p ON a.plan = p.plan WHERE p.fee > 10",
        )
        .await;
        let updated = c
            .update(
                "UPDATE accounts SET name = accounts.name || ' on ' || plans.name FROM plans \
                 WHERE accounts.plan = plans.plan AND plans.fee > 10",
            )
            .await
            .expect("update ... from a reference table");
        assert_eq!(updated, expensive);
        single_node(
            &single,
            "CREATE OR REPLACE TABLE accounts AS SELECT a.company_id, a.id, a.plan, a.balance, \
             CASE WHEN p.fee > 10 THEN a.name || ' on ' || p.name ELSE a.name END AS name \
             FROM accounts a JOIN plans p ON a.plan = p.plan",
        )
        .await;
        same(
            &mut c,
            &single,
            "SELECT * FROM accounts ORDER BY company_id, id",
        )
        .await;

        // A row met by several rows of FROM changes once.
        let once = single_count(
            &single,
            "SELECT count(DISTINCT a.id) FROM accounts a JOIN payments p \
             ON a.company_id = p.company_id AND a.id = p.account_id WHERE p.amount > 9",
        )
        .await;
        let updated = c
            .update(
                "UPDATE accounts SET plan = 9 FROM payments p WHERE accounts.company_id = \
                 p.company_id AND accounts.id = p.account_id AND p.amount > 9",
            )
            .await
            .expect("update ... from with several matches");
        assert_eq!(updated, once);
        single_node(
            &single,
            "CREATE OR REPLACE TABLE accounts AS SELECT a.company_id, a.id, CASE WHEN \
             m.account_id IS NOT NULL THEN 9 ELSE a.plan END AS plan, a.balance, a.name \
             FROM accounts a LEFT JOIN (SELECT DISTINCT company_id, account_id FROM payments \
             WHERE amount > 9) m ON a.company_id = m.company_id AND a.id = m.account_id",
        )
        .await;
        same(
            &mut c,
            &single,
            "SELECT * FROM accounts ORDER BY company_id, id",
        )
        .await;

        // DELETE ... USING a co-located table; payments has no key (equal rows go alike).
        let doomed = single_count(
            &single,
            "SELECT count(*) FROM payments p JOIN accounts a ON p.company_id = a.company_id \
             AND p.account_id = a.id WHERE a.plan = 3",
        )
        .await;
        assert!(doomed > 0);
        let deleted = c
            .update(
                "DELETE FROM payments USING accounts a WHERE payments.company_id = \
                 a.company_id AND payments.account_id = a.id AND a.plan = 3",
            )
            .await
            .expect("delete ... using");
        assert_eq!(deleted, doomed);
        single_node(
            &single,
            "CREATE OR REPLACE TABLE payments AS SELECT p.* FROM payments p JOIN accounts a \
             ON p.company_id = a.company_id AND p.account_id = a.id WHERE a.plan <> 3",
        )
        .await;
        same(
            &mut c,
            &single,
            "SELECT company_id, account_id, amount, count(*) FROM payments \
             GROUP BY company_id, account_id, amount ORDER BY company_id, account_id, amount",
        )
        .await;
        // Nothing matches: nothing changes.
        let none = c
            .update("DELETE FROM payments USING plans WHERE plans.fee < 0")
            .await
            .expect("delete ... using, no match");
        assert_eq!(none, 0);
        same(&mut c, &single, "SELECT count(*) FROM payments").await;
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn returning_gives_the_rows_as_update_and_delete_leave_them() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        let single = SessionContext::new();
        load(&mut c, &single).await;

        let returned = c
            .run(
                "UPDATE accounts SET balance = balance + 1 WHERE company_id = 7 AND id < 300 \
                 RETURNING id, balance, balance - 1 AS was",
            )
            .await;
        let expected = single_node(
            &single,
            "SELECT id, balance + 1 AS balance, balance AS was FROM accounts \
             WHERE company_id = 7 AND id < 300",
        )
        .await;
        assert_same("UPDATE ... RETURNING", &returned, &expected, false);
        single_node(
            &single,
            "CREATE OR REPLACE TABLE accounts AS SELECT company_id, id, plan, CASE WHEN \
             company_id = 7 AND id < 300 THEN balance + 1 ELSE balance END AS balance, name \
             FROM accounts",
        )
        .await;

        // DELETE returns the rows as they were; an alias names them.
        let returned = c
            .run("DELETE FROM accounts AS a WHERE a.id IN (27, 28) RETURNING a.*")
            .await;
        let expected = single_node(&single, "SELECT * FROM accounts WHERE id IN (27, 28)").await;
        assert_same("DELETE ... RETURNING", &returned, &expected, false);
        single_node(
            &single,
            "CREATE OR REPLACE TABLE accounts AS SELECT * FROM accounts WHERE id NOT IN (27, 28)",
        )
        .await;

        // With FROM, RETURNING the changed rows of the target.
        let returned = c
            .run(
                "UPDATE plans SET fee = plans.fee + 1 FROM accounts a WHERE a.plan = plans.plan \
                 AND a.id = 42 RETURNING plans.plan, fee",
            )
            .await;
        assert_eq!(rows(&returned), vec!["2 | 15".to_string()]);
        single_node(
            &single,
            "CREATE OR REPLACE TABLE plans AS SELECT plan, name, CASE WHEN plan = 2 THEN \
             fee + 1 ELSE fee END AS fee FROM plans",
        )
        .await;

        // Nothing matched: no rows, the list's columns.
        let (schema, batches) = c
            .query_with_schema("DELETE FROM accounts WHERE id < 0 RETURNING id, name")
            .await
            .expect("delete returning nothing");
        let returned: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(returned, 0);
        assert_eq!(schema.fields().len(), 2, "{schema:?}");

        // A list that does not fit the table fails before anything changes.
        let message = c
            .expect_error(
                "UPDATE accounts SET balance = 0 RETURNING no_such_column",
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("no_such_column"), "{message}");
        same(
            &mut c,
            &single,
            "SELECT * FROM accounts ORDER BY company_id, id",
        )
        .await;
        same(&mut c, &single, "SELECT * FROM plans ORDER BY plan").await;
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_conflict_do_update_upserts_as_postgres_does() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE counters (tenant BIGINT NOT NULL, key TEXT NOT NULL, \
             hits BIGINT NOT NULL, note TEXT, PRIMARY KEY (tenant, key))",
        )
        .await;
        c.run("SELECT create_distributed_table('counters', 'tenant', shard_count => 4)")
            .await;
        c.run(
            "INSERT INTO counters SELECT v % 10, 'k' || v, v, NULL \
             FROM generate_series(1, 200) t(v)",
        )
        .await;
        let all = "SELECT tenant, key, hits, note FROM counters ORDER BY tenant, key";

        // Two stored keys are updated, one new key inserted.
        let upserted = c
            .update(
                "INSERT INTO counters AS c (tenant, key, hits, note) VALUES (1, 'k1', 5, 'a'), \
                 (2, 'k2', 5, 'b'), (3, 'new', 5, 'c') ON CONFLICT (tenant, key) DO UPDATE \
                 SET hits = c.hits + excluded.hits, note = excluded.note",
            )
            .await
            .expect("upsert");
        assert_eq!(upserted, 3);
        assert_eq!(
            rows(
                &c.run(
                    "SELECT tenant, key, hits, note FROM counters WHERE key IN ('k1', 'k2', \
                     'new') ORDER BY key"
                )
                .await
            ),
            vec!["1 | k1 | 6 | a", "2 | k2 | 7 | b", "3 | new | 5 | c"]
        );
        assert_eq!(c.scalar("SELECT count(*) FROM counters").await, "201");

        // DO UPDATE ... WHERE: a stored row it does not select stays, and is not inserted.
        let upserted = c
            .update(
                "INSERT INTO counters VALUES (3, 'k3', 1, 'x'), (4, 'k194', 1, 'y') \
                 ON CONFLICT (tenant, key) DO UPDATE SET note = excluded.note \
                 WHERE counters.hits < 100",
            )
            .await
            .expect("conditional upsert");
        assert_eq!(upserted, 1);
        assert_eq!(
            rows(
                &c.run("SELECT key, note FROM counters WHERE key IN ('k3', 'k194') ORDER BY key")
                    .await
            ),
            vec!["k194 | NULL", "k3 | x"]
        );

        // RETURNING gives the updated and the inserted rows.
        let returned = c
            .run(
                "INSERT INTO counters VALUES (5, 'k5', 10, NULL), (5, 'fresh', 1, NULL) \
                 ON CONFLICT (tenant, key) DO UPDATE SET hits = counters.hits * 2 \
                 RETURNING key, hits",
            )
            .await;
        let mut returned = rows(&returned);
        returned.sort();
        assert_eq!(returned, vec!["fresh | 1", "k5 | 10"]);

        // Refusals change nothing: a key proposed twice (21000), no conflict target, the
        // distribution column.
        let before = rows(&c.run(all).await);
        let status = c
            .query(
                "INSERT INTO counters VALUES (6, 'k6', 1, NULL), (6, 'k6', 2, NULL) \
                 ON CONFLICT (tenant, key) DO UPDATE SET hits = excluded.hits",
            )
            .await
            .expect_err("a row changed twice");
        assert_eq!(sqlstate(&status), Some("21000"), "{status:?}");
        assert!(status.message().contains("a second time"), "{status:?}");
        let message = c
            .expect_error(
                "INSERT INTO counters VALUES (7, 'k7', 1, NULL), (7, 'other', 1, NULL) \
                 ON CONFLICT DO UPDATE SET hits = 0",
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("ON CONFLICT (key columns)"), "{message}");
        let message = c
            .expect_error(
                "INSERT INTO counters VALUES (8, 'k8', 1, NULL) \
                 ON CONFLICT (tenant, key) DO UPDATE SET tenant = 9",
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("distribution column"), "{message}");
        assert_eq!(rows(&c.run(all).await), before);

        // A key proposed twice is refused even when it is new; a column the statement leaves
        // out is its default in `excluded`; the update may change a key column, and the
        // proposed row it met is then not inserted (it conflicted).
        let status = c
            .query(
                "INSERT INTO counters VALUES (6, 'new6', 1, NULL), (6, 'new6', 2, NULL) \
                 ON CONFLICT (tenant, key) DO UPDATE SET hits = excluded.hits",
            )
            .await
            .expect_err("a new key proposed twice");
        assert_eq!(sqlstate(&status), Some("21000"), "{status:?}");
        c.run(
            "CREATE TABLE visits (tenant BIGINT NOT NULL, key TEXT NOT NULL, \
             hits BIGINT NOT NULL, weight BIGINT DEFAULT 7, PRIMARY KEY (tenant, key))",
        )
        .await;
        c.run("SELECT create_distributed_table('visits', 'tenant', colocate_with => 'counters')")
            .await;
        c.run("INSERT INTO visits VALUES (1, 'k11', 11, 1)").await;
        let upserted = c
            .update(
                "INSERT INTO visits AS v (tenant, key, hits) VALUES (1, 'k11', 0) \
                 ON CONFLICT (tenant, key) DO UPDATE SET hits = v.hits + excluded.weight, \
                 key = 'k11-renamed'",
            )
            .await
            .expect("an upsert changing a key column");
        assert_eq!(upserted, 1);
        assert_eq!(
            rows(
                &c.run("SELECT key, hits, weight FROM visits ORDER BY key")
                    .await
            ),
            vec!["k11-renamed | 18 | 1"]
        );

        // Rolled back with its transaction, both halves.
        let mut session = cluster.client().await;
        session.open_session().await.expect("session");
        session.run("BEGIN").await;
        session
            .update(
                "INSERT INTO counters VALUES (9, 'k9', 1000, 'tx'), (9, 'tx-new', 1, NULL) \
                 ON CONFLICT (tenant, key) DO UPDATE SET hits = excluded.hits",
            )
            .await
            .expect("upsert in a transaction");
        assert_eq!(
            session
                .scalar("SELECT hits FROM counters WHERE key = 'k9'")
                .await,
            "1000"
        );
        session.run("ROLLBACK").await;
        assert_eq!(rows(&c.run(all).await), before);
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_one_row_commit_or_fail_with_40001() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE hits (page TEXT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)")
            .await;
        c.run("SELECT create_distributed_table('hits', 'page', shard_count => 4)")
            .await;
        c.run("INSERT INTO hits VALUES ('home', 0)").await;
        let url = cluster.url.clone();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move {
                    let mut client = TestClient::connect(&url).await;
                    let mut committed = 0;
                    for _ in 0..10 {
                        match client
                            .update(
                                "INSERT INTO hits VALUES ('home', 1) ON CONFLICT (page) \
                                 DO UPDATE SET n = hits.n + 1",
                            )
                            .await
                        {
                            Ok(_) => committed += 1,
                            Err(status) => assert_eq!(
                                sqlstate(&status),
                                Some("40001"),
                                "only the retryable conflict: {status:?}"
                            ),
                        }
                    }
                    committed
                })
            })
            .collect();
        let mut committed = 0;
        for writer in writers {
            committed += writer.await.expect("writer");
        }
        assert!(committed > 0);
        assert_eq!(c.scalar("SELECT n FROM hits").await, committed.to_string());

        // SET names the target's column even where FROM has one of the same name (a
        // self-join), prepared as ADBC and JDBC prepare every statement.
        c.run("INSERT INTO hits VALUES ('about', 5)").await;
        let (_, changed) = c
            .prepared(
                "UPDATE hits SET n = other.n * 10 FROM hits other \
                 WHERE hits.page = 'about' AND other.page = 'about'",
            )
            .await
            .expect("prepared UPDATE ... FROM a self-join");
        assert_eq!(rows(&changed), vec!["1"]);
        assert_eq!(
            c.scalar("SELECT n FROM hits WHERE page = 'about'").await,
            "50"
        );
    })
    .await
    .expect("finishes in time");
}
