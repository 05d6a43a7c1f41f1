//! `isolate_tenant_to_new_shard(t, tenant, 'CASCADE')` on the in-process cluster, as a
//! multi-tenant application would use it: one large tenant gets a shard of its own in every
//! co-located table while a query loop checks every answer and an insert loop (writing into
//! the tenant's shard too, and retrying the retryable conflicts as a client should) checks
//! that every acknowledged row ends up present exactly once. Then the uneven shards are used
//! as any others: routed, pruned, joined (co-located, and against a table whose shards do not
//! line up), moved, and evened out again by `alter_distributed_table`. Answers are compared
//! with single-node DataFusion over the same rows.

use std::time::Duration;

use datafusion::prelude::SessionContext;
use shardfusion_tests::TestCluster;
use shardfusion_tests::compare::{assert_same, rows};
use shardfusion_tests::online_loops::{OnlineLoops, ROWS_PER_INSERT};
use tonic::Code;

/// The large tenant.
const TENANT: i64 = 17;

const JOIN: &str = "SELECT CAST(sum(amount) AS BIGINT), count(*) FROM payments \
                    JOIN accounts ON account_id = id";
const TENANT_ROWS: &str = "SELECT count(*), CAST(sum(amount) AS BIGINT) FROM payments \
                           WHERE account_id = 17";

const ACCOUNTS: &str = "SELECT CAST(v AS BIGINT) AS id, 'owner ' || v AS owner \
                        FROM generate_series(1, 2000) t(v)";
/// Every account has payments; the tenant has as many as all the others together.
const PAYMENTS: &str = "SELECT CAST(CASE WHEN v % 2 = 0 THEN 17 ELSE v % 2000 + 1 END AS BIGINT) \
                        AS account_id, CAST(v AS BIGINT) AS amount \
                        FROM generate_series(1, 40000) t(v)";

/// Rows keyed by sequence number into `events`; every other one is the tenant's.
fn insert_events(from: i64) -> (String, Vec<i64>) {
    let seqs: Vec<i64> = (from..from + ROWS_PER_INSERT).collect();
    let values: Vec<String> = seqs
        .iter()
        .map(|seq| {
            let account = if seq % 2 == 0 { TENANT } else { seq % 2000 + 1 };
            format!("({account}, {seq})")
        })
        .collect();
    (
        format!("INSERT INTO events VALUES {}", values.join(", ")),
        seqs,
    )
}

/// Runs `sql` on a single-node DataFusion holding the same accounts and payments.
async fn single_node(
    single: &SessionContext,
    sql: &str,
) -> Vec<datafusion::arrow::array::RecordBatch> {
    single
        .sql(sql)
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolates_a_tenant_in_every_colocated_table_online() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE accounts (id BIGINT NOT NULL, owner TEXT)")
            .await;
        c.run("CREATE TABLE payments (account_id BIGINT NOT NULL, amount BIGINT NOT NULL)")
            .await;
        c.run("CREATE TABLE events (account_id BIGINT NOT NULL, seq BIGINT NOT NULL)")
            .await;
        c.run("SELECT create_distributed_table('accounts', 'id', shard_count => 4)")
            .await;
        for table in ["payments", "events"] {
            c.run(&format!(
                "SELECT create_distributed_table('{table}', 'account_id', \
                 colocate_with => 'accounts')"
            ))
            .await;
        }
        c.run(&format!("INSERT INTO accounts {ACCOUNTS}")).await;
        c.run(&format!("INSERT INTO payments {PAYMENTS}")).await;
        let mut checks = Vec::new();
        for sql in [JOIN, TENANT_ROWS] {
            checks.push((sql.to_string(), rows(&c.run(sql).await).join("\n")));
        }
        let before = c
            .scalar("SELECT get_shard_id_for_distribution_column('payments', 17)")
            .await;

        // Co-located with others: Citus asks for CASCADE.
        let message = c
            .expect_error(
                "SELECT isolate_tenant_to_new_shard('payments', 17)",
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("CASCADE"), "{message}");

        let loops = OnlineLoops::start(&cluster.url, checks, insert_events, 2);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let isolated = c
            .scalar("SELECT isolate_tenant_to_new_shard('payments', 17, 'CASCADE')")
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = loops.stop().await;
        seen.assert_no_failures();
        let acknowledged = seen.acknowledged.len();
        assert!(acknowledged > 0);

        // The tenant's shard covers its hash alone, in every table of the group, and the
        // group stays one group with more shards.
        assert_ne!(isolated, before);
        assert_eq!(
            c.scalar("SELECT get_shard_id_for_distribution_column('payments', 17)")
                .await,
            isolated
        );
        assert_eq!(
            c.scalar(&format!(
                "SELECT CAST(shardminvalue = shardmaxvalue AS TEXT) FROM pg_dist_shard \
                 WHERE shardid = {isolated}"
            ))
            .await,
            "true"
        );
        let per_table = c
            .scalar(
                "SELECT string_agg(logicalrelid || ':' || n, ',' ORDER BY logicalrelid) FROM \
                 (SELECT logicalrelid, count(*) AS n FROM pg_dist_shard GROUP BY logicalrelid) t",
            )
            .await;
        let counts: Vec<&str> = per_table.split(',').collect();
        assert_eq!(counts.len(), 3, "{per_table}");
        let shards: i64 = counts[0]
            .split(':')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("count");
        assert!(
            (5..=6).contains(&shards) && counts.iter().all(|t| t.ends_with(&format!(":{shards}"))),
            "every table split alike: {per_table}"
        );
        assert_eq!(
            c.scalar(
                "SELECT count(DISTINCT p.colocationid) || '/' || max(c.shardcount) FROM \
                 pg_dist_partition p JOIN pg_dist_colocation c \
                 ON p.colocationid = c.colocationid WHERE logicalrelid IN ('accounts', 'payments', 'events')"
            )
            .await,
            format!("1/{shards}")
        );
        let message = c
            .expect_error(
                "SELECT isolate_tenant_to_new_shard('accounts', 17, 'CASCADE')",
                Code::FailedPrecondition,
            )
            .await;
        assert!(message.contains("already been isolated"), "{message}");

        // Every acknowledged insert exactly once; the tenant's rows all in its own shard.
        assert_eq!(
            c.scalar("SELECT count(*) || '/' || count(DISTINCT seq) FROM events")
                .await,
            format!("{acknowledged}/{acknowledged}")
        );
        assert_eq!(
            c.scalar("SELECT count(*) FROM events WHERE account_id = 17")
                .await,
            (acknowledged / 2).to_string()
        );

        // A table co-located later takes the uneven ranges; one distributed with as many
        // shards but no co-location has even ranges, and joins with it still match.
        c.run("CREATE TABLE notes (account_id BIGINT NOT NULL, note TEXT)")
            .await;
        c.run(
            "SELECT create_distributed_table('notes', 'account_id', colocate_with => 'accounts')",
        )
        .await;
        c.run("CREATE TABLE plain_accounts (id BIGINT NOT NULL, owner TEXT)")
            .await;
        c.run(&format!(
            "SELECT create_distributed_table('plain_accounts', 'id', shard_count => {shards}, \
             colocate_with => 'none')"
        ))
        .await;
        c.run(&format!("INSERT INTO plain_accounts {ACCOUNTS}"))
            .await;
        c.run("INSERT INTO notes SELECT id, owner FROM accounts WHERE id % 3 = 0")
            .await;
        assert_eq!(
            c.scalar(
                "SELECT count(*) FROM pg_dist_shard a JOIN pg_dist_shard n \
                      USING (shardminvalue, shardmaxvalue) \
                      WHERE a.logicalrelid = 'accounts' AND n.logicalrelid = 'notes'"
            )
            .await,
            shards.to_string()
        );

        let single = SessionContext::new();
        for (name, sql) in [
            ("accounts", ACCOUNTS),
            ("plain_accounts", ACCOUNTS),
            ("payments", PAYMENTS),
        ] {
            single_node(&single, &format!("CREATE TABLE {name} AS {sql}")).await;
        }
        single_node(
            &single,
            "CREATE TABLE notes AS SELECT id AS account_id, owner AS note FROM accounts \
             WHERE id % 3 = 0",
        )
        .await;
        let checks = [
            JOIN,
            TENANT_ROWS,
            "SELECT account_id, count(*), CAST(sum(amount) AS BIGINT) FROM payments \
             GROUP BY account_id ORDER BY count(*) DESC, account_id LIMIT 10",
            "SELECT owner, CAST(sum(amount) AS BIGINT) FROM payments JOIN plain_accounts \
             ON account_id = id GROUP BY owner ORDER BY 2 DESC, owner LIMIT 10",
            "SELECT count(*) FROM payments p JOIN plain_accounts a ON p.account_id = a.id \
             WHERE a.id IN (16, 17, 18)",
            "SELECT n.note, count(*) FROM notes n JOIN payments p \
             ON n.account_id = p.account_id WHERE p.account_id BETWEEN 10 AND 40 \
             GROUP BY n.note ORDER BY n.note",
            "SELECT a.id, count(p.amount) FROM accounts a LEFT JOIN payments p \
             ON p.account_id = a.id WHERE a.id IN (17, 1999) GROUP BY a.id ORDER BY a.id",
        ];
        // The smaller side is sent into the uneven shards by their ranges (the plan carries
        // the list of range starts to the workers).
        let explain = c
            .run("EXPLAIN SELECT count(*) FROM payments p JOIN plain_accounts a ON p.account_id = a.id")
            .await;
        let plan = datafusion::arrow::util::pretty::pretty_format_batches(&explain)
            .expect("printable")
            .to_string();
        assert!(plan.contains("shardfusion_shard_index(id@0, ["), "{plan}");
        for sql in checks {
            let expected = single_node(&single, sql).await;
            assert_same(sql, &c.run(sql).await, &expected, true);
        }

        // The tenant's shard group moves like any other.
        let source = c
            .scalar(&format!(
                "SELECT nodeid FROM pg_dist_node WHERE nodeport = \
                 (SELECT nodeport FROM citus_shards WHERE shardid = {isolated})"
            ))
            .await;
        let target = c
            .scalar(&format!(
                "SELECT min(nodeid) FROM pg_dist_node WHERE nodeid <> {source}"
            ))
            .await;
        c.run(&format!(
            "SELECT citus_move_shard_placement({isolated}, {source}, {target})"
        ))
        .await;
        for sql in checks {
            let expected = single_node(&single, sql).await;
            assert_same(sql, &c.run(sql).await, &expected, true);
        }

        // Re-sharding to as many shards evens the ranges out again.
        c.run(&format!(
            "SELECT alter_distributed_table('accounts', shard_count => {shards}, \
             cascade_to_colocated => true)"
        ))
        .await;
        assert_eq!(
            c.scalar(
                "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'payments' \
                      AND shardminvalue = shardmaxvalue"
            )
            .await,
            "0"
        );
        for sql in checks {
            let expected = single_node(&single, sql).await;
            assert_same(sql, &c.run(sql).await, &expected, true);
        }

        // Bad calls say what is wrong.
        c.expect_error(
            "SELECT isolate_tenant_to_new_shard('plain_missing', 1)",
            Code::NotFound,
        )
        .await;
        c.run("CREATE TABLE local_only (x BIGINT)").await;
        c.expect_error(
            "SELECT isolate_tenant_to_new_shard('local_only', 1)",
            Code::InvalidArgument,
        )
        .await;
        c.expect_error(
            "SELECT isolate_tenant_to_new_shard('plain_accounts', 'not a number')",
            Code::InvalidArgument,
        )
        .await;
        c.expect_error(
            "SELECT isolate_tenant_to_new_shard('plain_accounts', 5, 'sideways')",
            Code::InvalidArgument,
        )
        .await;
    })
    .await
    .expect("the test finishes within 300 s");
}
