//! `CREATE VIEW` and `DROP VIEW`: a view answers as its query would, over distributed and
//! reference tables, filtered, joined, and over other views, and follows later writes; its
//! answers match single-node DataFusion's same view; names clash with tables as relations do;
//! both statements roll back with their transaction.

use std::time::Duration;

use datafusion::prelude::SessionContext;
use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::{assert_same, rows};
use shardfusion_tests::conflict::sqlstate;
use tonic::Code;

const ORDERS: &str = "SELECT CAST(v % 50 AS BIGINT) AS customer_id, CAST(v AS BIGINT) AS id, \
     CAST(v % 17 AS BIGINT) AS amount FROM generate_series(1, 5000) t(v)";
const CUSTOMERS: &str = "SELECT CAST(v AS BIGINT) AS id, 'customer ' || v AS name \
     FROM generate_series(0, 49) t(v)";
const VIEWS: [&str; 3] = [
    "CREATE VIEW totals AS SELECT customer_id, sum(amount) AS total, count(*) AS orders \
     FROM orders GROUP BY customer_id",
    "CREATE VIEW named_totals (customer, spent) AS SELECT c.name, t.total FROM totals t \
     JOIN customers c ON c.id = t.customer_id",
    "CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 14",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn views_answer_as_their_queries() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        let single = SessionContext::new();
        c.run(
            "CREATE TABLE orders (customer_id BIGINT NOT NULL, id BIGINT NOT NULL, amount BIGINT)",
        )
        .await;
        c.run("SELECT create_distributed_table('orders', 'customer_id', shard_count => 4)")
            .await;
        c.run("CREATE TABLE customers (id BIGINT NOT NULL, name TEXT)")
            .await;
        c.run("SELECT create_reference_table('customers')").await;
        for (table, rows) in [("orders", ORDERS), ("customers", CUSTOMERS)] {
            c.run(&format!("INSERT INTO {table} {rows}")).await;
            single
                .sql(&format!("CREATE TABLE {table} AS {rows}"))
                .await
                .expect("plans")
                .collect()
                .await
                .expect("runs");
        }
        for view in VIEWS {
            c.run(view).await;
            single
                .sql(view)
                .await
                .expect("plans")
                .collect()
                .await
                .expect("runs");
        }
        for sql in [
            "SELECT * FROM totals ORDER BY customer_id",
            "SELECT * FROM totals WHERE customer_id = 7",
            "SELECT customer, spent FROM named_totals WHERE spent > 300 ORDER BY customer",
            "SELECT customer_id, count(*) FROM big_orders GROUP BY customer_id ORDER BY 1",
            "SELECT b.id, t.total FROM big_orders b JOIN totals t USING (customer_id) \
             WHERE b.customer_id = 3 ORDER BY b.id",
        ] {
            let expected = single
                .sql(sql)
                .await
                .expect("plans")
                .collect()
                .await
                .expect("runs");
            assert_same(sql, &c.run(sql).await, &expected, true);
        }

        // A view reads the tables as they are when it is used.
        c.run("INSERT INTO orders VALUES (7, 100000, 1000)").await;
        let total = c
            .scalar("SELECT total FROM totals WHERE customer_id = 7")
            .await;
        let expected = c
            .scalar("SELECT sum(amount) FROM orders WHERE customer_id = 7")
            .await;
        assert_eq!(total, expected);

        // Names: a view cannot take a table's name, nor a table a view's; OR REPLACE replaces.
        let status = c
            .query("CREATE VIEW orders AS SELECT 1")
            .await
            .expect_err("a table's name");
        assert_eq!(sqlstate(&status), Some("42P07"), "{status:?}");
        let status = c
            .query("CREATE TABLE totals (x BIGINT)")
            .await
            .expect_err("a view's name");
        assert_eq!(sqlstate(&status), Some("42P07"), "{status:?}");
        c.expect_error("CREATE VIEW v AS SELECT * FROM nope", Code::NotFound)
            .await;
        c.run("CREATE OR REPLACE VIEW big_orders AS SELECT * FROM orders WHERE amount > 15")
            .await;
        assert_eq!(c.scalar("SELECT min(amount) FROM big_orders").await, "16");
        c.expect_error(
            "CREATE MATERIALIZED VIEW m AS SELECT 1",
            Code::Unimplemented,
        )
        .await;

        // DROP VIEW, and both statements in a transaction.
        c.run("DROP VIEW big_orders").await;
        c.expect_error("SELECT * FROM big_orders", Code::NotFound)
            .await;
        c.expect_error("DROP VIEW big_orders", Code::NotFound).await;
        c.run("DROP VIEW IF EXISTS big_orders").await;
        let mut session = cluster.client().await;
        session.open_session().await.expect("session");
        session.run("BEGIN").await;
        session.run("DROP VIEW named_totals").await;
        session
            .run("CREATE VIEW recent AS SELECT * FROM orders WHERE id > 4990")
            .await;
        assert_eq!(session.scalar("SELECT count(*) FROM recent").await, "11");
        session.run("ROLLBACK").await;
        c.expect_error("SELECT * FROM recent", Code::NotFound).await;
        assert_eq!(
            rows(&c.run("SELECT count(*) FROM named_totals").await),
            vec!["50"]
        );
    })
    .await
    .expect("finishes in time");
}
