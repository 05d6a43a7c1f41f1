//! `CHECK` constraints as PostgreSQL enforces them: on columns and on the table, named as
//! PostgreSQL names them, evaluated on every row `INSERT`, bulk ingest, `UPDATE` and upserts
//! add (a violation fails with SQLSTATE 23514 and writes nothing; NULL passes), added by
//! `ALTER TABLE ... ADD CONSTRAINT` only if every stored row passes, dropped, and rolled back
//! with their transaction.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use shardfusion_tests::compare::rows;
use shardfusion_tests::conflict::sqlstate;
use shardfusion_tests::{TestClient, TestCluster};

/// `sql` must fail with a check violation naming `constraint`; returns nothing else.
async fn violates(c: &mut TestClient, sql: &str, constraint: &str) {
    let status = c.query(sql).await.expect_err(sql);
    assert_eq!(sqlstate(&status), Some("23514"), "{sql}: {status:?}");
    assert!(
        status.message().contains(&format!("\"{constraint}\"")),
        "{sql}: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_constraints_hold_on_every_write() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE products (id BIGINT NOT NULL PRIMARY KEY, \
             price BIGINT CHECK (price > 0), discount BIGINT, \
             name TEXT CONSTRAINT name_length CHECK (char_length(name) >= 2), \
             CHECK (discount IS NULL OR discount < price))",
        )
        .await;
        c.run("SELECT create_distributed_table('products', 'id', shard_count => 4)")
            .await;
        c.run("INSERT INTO products VALUES (1, 10, 2, 'pen'), (2, NULL, NULL, 'ink')")
            .await;
        let all = "SELECT * FROM products ORDER BY id";
        let before = rows(&c.run(all).await);

        // INSERT: one bad row of several writes nothing.
        violates(
            &mut c,
            "INSERT INTO products VALUES (3, 5, NULL, 'cap'), (4, -1, NULL, 'nib')",
            "products_price_check",
        )
        .await;
        violates(
            &mut c,
            "INSERT INTO products VALUES (5, 5, 5, 'cap')",
            "products_check",
        )
        .await;
        violates(
            &mut c,
            "INSERT INTO products VALUES (6, 5, 1, 'x')",
            "name_length",
        )
        .await;
        // Bulk ingest, as ADBC's adbc_ingest sends it.
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("price", DataType::Int64, true),
            Field::new("discount", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7, 8])),
                Arc::new(Int64Array::from(vec![3, 0])),
                Arc::new(Int64Array::from(vec![None, None])),
                Arc::new(StringArray::from(vec!["aa", "bb"])),
            ],
        )
        .expect("batch");
        let status = c
            .ingest("products", futures::stream::iter(vec![Ok(batch)]))
            .await
            .expect_err("ingest of a row failing a check");
        assert_eq!(sqlstate(&status), Some("23514"), "{status:?}");
        assert_eq!(rows(&c.run(all).await), before);

        // UPDATE and upserts check the rows as they leave them.
        violates(
            &mut c,
            "UPDATE products SET price = -5 WHERE id = 2",
            "products_price_check",
        )
        .await;
        violates(
            &mut c,
            "INSERT INTO products VALUES (1, 10, 2, 'pen') ON CONFLICT (id) \
             DO UPDATE SET discount = 50",
            "products_check",
        )
        .await;
        assert_eq!(rows(&c.run(all).await), before);
        assert_eq!(
            c.update("UPDATE products SET price = price * 2 WHERE price IS NOT NULL")
                .await
                .expect("a passing update"),
            1
        );

        // ALTER TABLE: a check stored rows fail is refused; one they pass is added.
        let status = c
            .query("ALTER TABLE products ADD CONSTRAINT dear CHECK (price > 100)")
            .await
            .expect_err("violated by a stored row");
        assert_eq!(sqlstate(&status), Some("23514"), "{status:?}");
        assert!(
            status.message().contains("violated by some row"),
            "{status:?}"
        );
        c.run("INSERT INTO products VALUES (3, 200, NULL, 'cap')")
            .await;
        c.run("ALTER TABLE products ADD CONSTRAINT positive_id CHECK (id > 0)")
            .await;
        violates(
            &mut c,
            "INSERT INTO products VALUES (-3, 200, NULL, 'cap')",
            "positive_id",
        )
        .await;
        c.run("ALTER TABLE products DROP CONSTRAINT name_length")
            .await;
        c.run("INSERT INTO products VALUES (9, 1, NULL, 'x')").await;

        // A check that is no condition over the table's columns is refused when declared.
        for sql in [
            "CREATE TABLE bad (a BIGINT CHECK (a + 1))",
            "CREATE TABLE bad (a BIGINT CHECK (zz > 0))",
        ] {
            c.expect_error(sql, tonic::Code::InvalidArgument).await;
        }
        c.expect_error(
            "ALTER TABLE products ADD COLUMN z BIGINT CHECK (z > 0)",
            tonic::Code::Unimplemented,
        )
        .await;

        // Rolled back with the transaction.
        let mut session = cluster.client().await;
        session.open_session().await.expect("session");
        session.run("BEGIN").await;
        session
            .run("ALTER TABLE products ADD CONSTRAINT cheap CHECK (price < 1000)")
            .await;
        violates(
            &mut session,
            "INSERT INTO products VALUES (10, 5000, NULL, 'gold')",
            "cheap",
        )
        .await;
        session.run("ROLLBACK").await;
        c.run("INSERT INTO products VALUES (10, 5000, NULL, 'gold')")
            .await;
        assert_eq!(c.scalar("SELECT count(*) FROM products").await, "5");
    })
    .await
    .expect("finishes in time");
}
