//! Distributed answers equal single-node DataFusion's on the same data, for distributed
//! (integer, text and date keys), reference, local and empty tables, at several shard counts.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::ParquetReadOptions;
use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::assert_same;
use shardfusion_tests::same_rows::write_parquet;

struct Table {
    name: &'static str,
    ddl: &'static str,
    distribute: Option<String>,
    batch: RecordBatch,
}

fn tables(shards: usize) -> Vec<Table> {
    let n = 20_000i64;
    let orders = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("o_id", DataType::Int64, false),
            Field::new("customer", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("qty", DataType::Int32, true),
            Field::new("day", DataType::Date32, true),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(1..=n)) as ArrayRef,
            Arc::new(StringArray::from_iter_values(
                (1..=n).map(|i| format!("c{}", i * 7 % 500)),
            )),
            Arc::new(Float64Array::from_iter(
                (1..=n).map(|i| (i % 17 != 0).then_some((i % 1000) as f64 * 0.25)),
            )),
            Arc::new(Int32Array::from_iter(
                (1..=n).map(|i| (i % 13 != 0).then_some((i % 50) as i32)),
            )),
            Arc::new(Date32Array::from_iter_values(
                (1..=n).map(|i| 19_000 + (i % 400) as i32),
            )),
        ],
    )
    .expect("orders");
    let customers = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("region", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..500).map(|i| format!("c{i}")),
            )) as ArrayRef,
            Arc::new(StringArray::from_iter((0..500).map(|i| {
                (i % 11 != 0)
                    .then(|| ["north", "south", "east", "west", "central"][i % 5].to_string())
            }))),
        ],
    )
    .expect("customers");
    let events = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, true),
            Field::new("at", DataType::Date32, true),
        ])),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..3000).map(|i| format!("t{}", i % 100)),
            )) as ArrayRef,
            Arc::new(StringArray::from_iter((0..3000).map(|i| {
                (i % 9 != 0).then(|| ["click", "view", "buy"][i % 3].to_string())
            }))),
            Arc::new(Date32Array::from_iter_values(
                (0..3000).map(|i| 19_500 + i % 30),
            )),
        ],
    )
    .expect("events");
    let days = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("day", DataType::Date32, false),
            Field::new("holiday", DataType::Boolean, true),
        ])),
        vec![
            Arc::new(Date32Array::from_iter_values(19_000..19_400)) as ArrayRef,
            Arc::new(BooleanArray::from_iter(
                (19_000..19_400).map(|d| Some(d % 7 == 0)),
            )),
        ],
    )
    .expect("days");
    let regions = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("region", DataType::Utf8, true),
            Field::new("label", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["north", "south", "east", "west"])) as ArrayRef,
            Arc::new(StringArray::from(vec!["N", "S", "E", "W"])),
        ],
    )
    .expect("regions");
    let empty = RecordBatch::new_empty(Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, false),
        Field::new("v", DataType::Utf8, true),
    ])));
    vec![
        Table {
            name: "orders",
            ddl: "CREATE TABLE orders (o_id BIGINT NOT NULL, customer TEXT, amount DOUBLE, qty INT, day DATE)",
            distribute: Some(format!(
                "SELECT create_distributed_table('orders', 'o_id', shard_count => {shards})"
            )),
            batch: orders,
        },
        Table {
            name: "customers",
            ddl: "CREATE TABLE customers (name TEXT NOT NULL, region TEXT)",
            distribute: Some("SELECT create_reference_table('customers')".into()),
            batch: customers,
        },
        Table {
            name: "events",
            ddl: "CREATE TABLE events (tenant TEXT NOT NULL, kind TEXT, at DATE)",
            distribute: Some(format!(
                "SELECT create_distributed_table('events', 'tenant', shard_count => {shards})"
            )),
            batch: events,
        },
        Table {
            name: "days",
            ddl: "CREATE TABLE days (day DATE NOT NULL, holiday BOOLEAN)",
            distribute: Some(format!(
                "SELECT create_distributed_table('days', 'day', shard_count => {shards})"
            )),
            batch: days,
        },
        Table {
            name: "regions",
            ddl: "CREATE TABLE regions (region TEXT, label TEXT)",
            distribute: None,
            batch: regions,
        },
        Table {
            name: "empty_dist",
            ddl: "CREATE TABLE empty_dist (k INT NOT NULL, v TEXT)",
            distribute: Some(format!(
                "SELECT create_distributed_table('empty_dist', 'k', shard_count => {shards})"
            )),
            batch: empty,
        },
    ]
}

/// `(sql, ordered)`: ordered results are compared row by row.
const QUERIES: &[(&str, bool)] = &[
    ("SELECT count(*) FROM orders", false),
    (
        "SELECT count(*), count(amount), sum(amount), avg(amount), min(amount), max(amount) FROM orders",
        false,
    ),
    (
        "SELECT sum(qty), avg(qty), stddev(amount), var_pop(amount), count(DISTINCT customer) FROM orders",
        false,
    ),
    (
        "SELECT customer, count(*), sum(amount) FROM orders GROUP BY customer",
        false,
    ),
    (
        "SELECT o_id, count(*) FROM orders GROUP BY o_id HAVING count(*) > 0 ORDER BY o_id LIMIT 20",
        true,
    ),
    ("SELECT * FROM orders WHERE o_id = 42", false),
    (
        "SELECT * FROM orders WHERE o_id IN (1, 2, 3, 19999, 50000)",
        false,
    ),
    (
        "SELECT o_id, amount FROM orders WHERE amount IS NULL ORDER BY o_id LIMIT 10",
        true,
    ),
    (
        "SELECT qty, count(*) FROM orders GROUP BY qty ORDER BY qty NULLS FIRST",
        true,
    ),
    (
        "SELECT o_id, amount FROM orders ORDER BY amount DESC NULLS LAST, o_id LIMIT 15",
        true,
    ),
    ("SELECT DISTINCT qty FROM orders", false),
    (
        "SELECT c.region, count(*), sum(o.amount) FROM orders o JOIN customers c ON o.customer = c.name GROUP BY c.region",
        false,
    ),
    (
        "SELECT r.label, count(*) FROM orders o JOIN customers c ON o.customer = c.name LEFT JOIN regions r ON c.region = r.region GROUP BY r.label",
        false,
    ),
    (
        "SELECT c.name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer = c.name AND o.qty > 48)",
        false,
    ),
    (
        "SELECT count(*) FROM orders WHERE customer IN (SELECT name FROM customers WHERE region = 'east')",
        false,
    ),
    (
        "SELECT o.day, d.holiday, count(*) FROM orders o JOIN days d ON o.day = d.day GROUP BY o.day, d.holiday",
        false,
    ),
    (
        "SELECT tenant, kind, count(*) FROM events GROUP BY tenant, kind",
        false,
    ),
    (
        "SELECT * FROM events WHERE tenant = 't7' ORDER BY at, kind NULLS FIRST",
        true,
    ),
    (
        "SELECT at, count(*) FROM events WHERE tenant IN ('t1', 't2') GROUP BY at",
        false,
    ),
    ("SELECT holiday, count(*) FROM days GROUP BY holiday", false),
    ("SELECT * FROM days WHERE day = DATE '2022-01-10'", false),
    (
        "SELECT customer, amount, rank() OVER (PARTITION BY customer ORDER BY amount DESC NULLS LAST, o_id) AS r FROM orders WHERE customer = 'c7' OR customer = 'c14'",
        false,
    ),
    (
        "SELECT o_id FROM orders WHERE o_id < 5 UNION SELECT k FROM empty_dist UNION ALL SELECT 100",
        false,
    ),
    (
        "SELECT o_id FROM orders WHERE o_id <= 10 EXCEPT SELECT o_id FROM orders WHERE o_id % 2 = 0",
        false,
    ),
    ("SELECT count(*), sum(k), max(v) FROM empty_dist", false),
    (
        "SELECT e.v, o.o_id FROM empty_dist e RIGHT JOIN orders o ON e.k = o.o_id WHERE o.o_id < 4",
        false,
    ),
    (
        "WITH top AS (SELECT customer, sum(amount) AS total FROM orders GROUP BY customer ORDER BY total DESC LIMIT 5) SELECT t.customer, t.total, c.region FROM top t JOIN customers c ON c.name = t.customer",
        false,
    ),
    ("SELECT label, region FROM regions ORDER BY label", true),
    (
        "SELECT array_agg(o_id ORDER BY o_id) FROM orders WHERE o_id < 6",
        false,
    ),
    (
        "SELECT approx_distinct(customer), bool_and(qty > -1) FROM orders",
        false,
    ),
    // Aggregates complete per shard (grouped by the distribution column), sorted and limited.
    (
        "SELECT o_id, count(*) FROM orders GROUP BY o_id ORDER BY o_id DESC LIMIT 7",
        true,
    ),
    (
        "SELECT o_id, sum(qty) AS s FROM orders GROUP BY o_id HAVING sum(qty) > 45 ORDER BY s DESC, o_id LIMIT 9",
        true,
    ),
    (
        "SELECT o_id % 10 AS bucket, max(c) FROM (SELECT o_id, count(*) AS c FROM orders GROUP BY o_id) t GROUP BY o_id % 10",
        false,
    ),
    (
        "SELECT t.o_id, t.c FROM (SELECT o_id, count(*) AS c FROM orders GROUP BY o_id) t JOIN orders o ON t.o_id = o.o_id WHERE o.qty = 3",
        false,
    ),
    (
        "SELECT o_id, customer FROM orders WHERE o_id IN (SELECT o_id FROM orders GROUP BY o_id HAVING sum(qty) > 47)",
        false,
    ),
    (
        "SELECT tenant, count(*) FROM events GROUP BY tenant ORDER BY count(*) DESC, tenant LIMIT 3",
        true,
    ),
    (
        "SELECT day, count(*) FROM days GROUP BY day ORDER BY day LIMIT 3",
        true,
    ),
    (
        "SELECT o_id, row_number() OVER (PARTITION BY o_id ORDER BY qty) FROM orders WHERE o_id < 30",
        false,
    ),
    // Co-located joins on the distribution column, all join types.
    (
        "SELECT a.o_id, b.qty FROM orders a LEFT JOIN orders b ON a.o_id = b.o_id AND b.qty > 40 WHERE a.o_id < 50",
        false,
    ),
    (
        "SELECT count(*), count(b.o_id) FROM orders a FULL JOIN (SELECT * FROM orders WHERE qty = 7) b ON a.o_id = b.o_id",
        false,
    ),
    (
        "SELECT a.customer, count(*) FROM orders a JOIN orders b ON a.o_id = b.o_id JOIN customers c ON c.name = a.customer GROUP BY a.customer",
        false,
    ),
    (
        "SELECT a.o_id, count(*) FROM orders a JOIN orders b ON a.o_id = b.o_id WHERE b.amount > 100 GROUP BY a.o_id ORDER BY a.o_id LIMIT 5",
        true,
    ),
    (
        "SELECT count(*) FROM orders a WHERE NOT EXISTS (SELECT 1 FROM orders b WHERE b.o_id = a.o_id AND b.qty IS NULL)",
        false,
    ),
    // Joins with a reference table, in both directions and every join type.
    (
        "SELECT o.o_id, c.region FROM orders o LEFT JOIN customers c ON o.customer = c.name AND c.region = 'east' WHERE o.o_id < 40",
        false,
    ),
    (
        "SELECT c.name, count(o.o_id) FROM customers c LEFT JOIN orders o ON o.customer = c.name AND o.qty = 1 GROUP BY c.name",
        false,
    ),
    (
        "SELECT count(*), count(c.name), count(o.o_id) FROM orders o FULL JOIN customers c ON o.customer = c.name",
        false,
    ),
    (
        "SELECT c.region, count(*) FROM orders o RIGHT JOIN customers c ON o.customer = c.name GROUP BY c.region",
        false,
    ),
    (
        "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer = c.name AND o.qty = 49)",
        false,
    ),
    (
        "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.name = o.customer AND c.region IS NOT NULL)",
        false,
    ),
    (
        "SELECT c.region, r.label, sum(o.amount) FROM orders o JOIN customers c ON o.customer = c.name JOIN regions r ON r.region = c.region GROUP BY c.region, r.label",
        false,
    ),
    // Router queries: one shard, the whole plan on one worker.
    ("SELECT * FROM orders WHERE o_id = 77 ORDER BY day", true),
    (
        "SELECT customer, sum(amount), count(*) FROM orders WHERE o_id = 5 GROUP BY customer",
        false,
    ),
    (
        "SELECT qty, row_number() OVER (ORDER BY o_id) FROM orders WHERE o_id = 12",
        false,
    ),
    (
        "SELECT count(*) FROM events WHERE tenant = 't3' AND kind = 'buy'",
        false,
    ),
];

async fn run_at(shards: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    let single = shardfusion_tests::compare::single_node_session();
    for table in tables(shards) {
        let path = dir.path().join(format!("{}.parquet", table.name));
        write_parquet(&path, &table.batch);
        client.run(table.ddl).await;
        let copy = format!(
            "COPY {} FROM '{}' WITH (FORMAT parquet)",
            table.name,
            path.display()
        );
        if table.name == "orders" {
            // Load orders before distributing it: the rows must move into the shards.
            client.run(&copy).await;
            if let Some(sql) = &table.distribute {
                client.run(sql).await;
            }
        } else {
            if let Some(sql) = &table.distribute {
                client.run(sql).await;
            }
            client.run(&copy).await;
        }
        single
            .register_parquet(
                table.name,
                path.to_str().expect("utf8 path"),
                ParquetReadOptions::default(),
            )
            .await
            .expect("register");
    }
    for (sql, ordered) in QUERIES {
        let actual = client.run(sql).await;
        let expected = match single.sql(sql).await {
            Ok(frame) => frame.collect().await,
            Err(e) => Err(e),
        }
        .unwrap_or_else(|e| panic!("single node failed on {sql}: {e}"));
        assert_same(
            &format!("[{shards} shards] {sql}"),
            &actual,
            &expected,
            *ordered,
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_single_node_with_1_shard() {
    run_at(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_single_node_with_7_shards() {
    run_at(7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_single_node_with_32_shards() {
    run_at(32).await;
}
