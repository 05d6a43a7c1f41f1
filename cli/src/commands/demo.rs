//! `shardfusion local --demo`: a small payments data set, multi-tenant by account, and a few
//! queries run through Flight SQL exactly as an application would run them.

use std::time::Instant;

use super::sql::SqlClient;
use crate::output::{Format, render};

const SETUP: &[(&str, &str)] = &[
    ("Create a reference table of merchants", "CREATE TABLE merchants (merchant_id INT NOT NULL, name TEXT, category TEXT, country TEXT)"),
    ("", "INSERT INTO merchants VALUES
        (1, 'Blue Bottle Coffee', 'food', 'US'), (2, 'Lidl', 'groceries', 'DE'),
        (3, 'Ryanair', 'travel', 'IE'), (4, 'Spotify', 'subscriptions', 'SE'),
        (5, 'Uber', 'transport', 'US'), (6, 'IKEA', 'home', 'SE'),
        (7, 'Carrefour', 'groceries', 'FR'), (8, 'Deliveroo', 'food', 'GB'),
        (9, 'Booking.com', 'travel', 'NL'), (10, 'Netflix', 'subscriptions', 'US'),
        (11, 'Decathlon', 'sports', 'FR'), (12, 'Zalando', 'fashion', 'DE')"),
    ("", "SELECT create_reference_table('merchants')"),
    ("Create accounts (tenants), distributed by account_id", "CREATE TABLE accounts (account_id BIGINT NOT NULL, name TEXT, plan TEXT, signed_up DATE)"),
    ("", "SELECT create_distributed_table('accounts', 'account_id', shard_count => 8)"),
    ("", "INSERT INTO accounts SELECT value, 'Account ' || value,
        CASE value % 3 WHEN 0 THEN 'free' WHEN 1 THEN 'pro' ELSE 'enterprise' END,
        CAST(to_timestamp(1704067200 + (value % 365) * 86400) AS DATE)
        FROM generate_series(1, 1000)"),
    ("Create payments, co-located with accounts", "CREATE TABLE payments (payment_id BIGINT NOT NULL, account_id BIGINT NOT NULL, merchant_id INT, amount_cents BIGINT, currency TEXT, status TEXT, paid_at TIMESTAMP)"),
    ("", "SELECT create_distributed_table('payments', 'account_id', colocate_with => 'accounts')"),
    ("", "INSERT INTO payments SELECT value, (value * 7919) % 1000 + 1, value % 12 + 1,
        (value * 104729) % 50000 + 100,
        CASE value % 4 WHEN 0 THEN 'EUR' ELSE 'USD' END,
        CASE WHEN value % 50 = 0 THEN 'refunded' WHEN value % 23 = 0 THEN 'failed' ELSE 'succeeded' END,
        to_timestamp(1735689600 + value * 37)
        FROM generate_series(1, 200000)"),
];

const QUERIES: &[(&str, &str)] = &[
    (
        "How the tables are laid out",
        "SELECT table_name, citus_table_type, distribution_column, shard_count, table_size FROM citus_tables ORDER BY table_name",
    ),
    (
        "Payment volume by status (two-phase aggregate over all shards)",
        "SELECT status, count(*) AS payments, sum(amount_cents) / 100.0 AS volume FROM payments GROUP BY status ORDER BY payments DESC",
    ),
    (
        "Top merchants, joined with the reference table",
        "SELECT m.name, m.category, count(*) AS payments, sum(p.amount_cents) / 100 AS volume FROM payments p JOIN merchants m ON p.merchant_id = m.merchant_id WHERE p.status = 'succeeded' GROUP BY m.name, m.category ORDER BY volume DESC LIMIT 5",
    ),
    (
        "One tenant's latest payments (routed to a single shard)",
        "SELECT payment_id, amount_cents, currency, status, paid_at FROM payments WHERE account_id = 42 ORDER BY paid_at DESC LIMIT 5",
    ),
    (
        "Which shard and worker hold account 42",
        "SELECT s.shardid, n.nodename, n.nodeport FROM pg_dist_shard s JOIN pg_dist_placement p ON s.shardid = p.shardid JOIN pg_dist_node n ON p.groupid = n.groupid WHERE s.shardid = get_shard_id_for_distribution_column_demo",
    ),
];

/// `tls_ca` is the authority of a `grpc+tls://` URL.
pub async fn run(
    url: &str,
    login: super::sql::Login,
    tls_ca: Option<&std::path::Path>,
) -> Result<(), String> {
    let mut client = SqlClient::connect(url, login, tls_ca).await?;
    println!(
        "\nLoading the demo data set (payments per account, merchants as a reference table)..."
    );
    let started = Instant::now();
    for (title, sql) in SETUP {
        if !title.is_empty() {
            println!("  - {title}");
        }
        client
            .query(sql)
            .await
            .map_err(|e| format!("{e}\n  while running: {sql}"))?;
    }
    println!("Loaded in {:.1} s.\n", started.elapsed().as_secs_f64());
    let (_, shard) = client
        .query("SELECT get_shard_id_for_distribution_column('payments', 42)")
        .await?;
    let shard_id = shard
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or_default();
    for (title, sql) in QUERIES {
        let sql = sql.replace(
            "get_shard_id_for_distribution_column_demo",
            &shard_id.to_string(),
        );
        println!("-- {title}\n{sql};");
        let started = Instant::now();
        let (schema, batches) = client.query(&sql).await?;
        println!("{}", render(&schema, &batches, Format::Table)?);
        println!("Time: {:.1} ms\n", started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(())
}
