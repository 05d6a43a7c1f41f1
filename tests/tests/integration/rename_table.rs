//! `ALTER TABLE ... RENAME TO` on distributed, reference and local tables: the rows, shards,
//! co-location and grants stay with the table under its new name; the old name is gone;
//! renaming onto an existing name is refused and changes nothing.

use std::time::Duration;

use shardfusion_tests::TestCluster;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renamed_table_keeps_its_rows_shards_and_colocation() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE accounts (id BIGINT NOT NULL, owner TEXT)")
            .await;
        c.run("CREATE TABLE payments (account_id BIGINT NOT NULL, amount BIGINT NOT NULL)")
            .await;
        c.run("SELECT create_distributed_table('accounts', 'id', shard_count => 4)")
            .await;
        c.run(
            "SELECT create_distributed_table('payments', 'account_id', \
             colocate_with => 'accounts')",
        )
        .await;
        c.run("CREATE TABLE plans (plan BIGINT NOT NULL)").await;
        c.run("SELECT create_reference_table('plans')").await;
        c.run("CREATE TABLE notes (body TEXT)").await;
        c.run("INSERT INTO accounts SELECT v, 'o' || v FROM generate_series(1, 500) t(v)")
            .await;
        c.run("INSERT INTO payments SELECT v % 500 + 1, v FROM generate_series(1, 3000) t(v)")
            .await;
        c.run("INSERT INTO plans VALUES (1), (2)").await;
        c.run("INSERT INTO notes VALUES ('a')").await;
        let join = "SELECT count(*), sum(amount) FROM payments p JOIN customers c \
                    ON p.account_id = c.id";
        let expected = c
            .scalar("SELECT count(*) || '/' || sum(amount) FROM payments")
            .await;
        let shards_before = c
            .scalar(
                "SELECT string_agg(CAST(shardid AS TEXT), ',' ORDER BY shardid) FROM pg_dist_shard \
                     WHERE logicalrelid = 'accounts'",
            )
            .await;

        c.run("ALTER TABLE accounts RENAME TO customers").await;
        c.run("ALTER TABLE plans RENAME TO tiers").await;
        c.run("ALTER TABLE notes RENAME TO memos").await;
        let got = c.run(join).await;
        assert_eq!(
            shardfusion_tests::compare::rows(&got).join(""),
            expected.replace('/', " | ")
        );
        assert_eq!(
            c.scalar(
                "SELECT string_agg(CAST(shardid AS TEXT), ',' ORDER BY shardid) \
                      FROM pg_dist_shard WHERE logicalrelid = 'customers'"
            )
            .await,
            shards_before
        );
        assert_eq!(
            c.scalar(
                "SELECT count(DISTINCT colocationid) FROM pg_dist_partition \
                      WHERE logicalrelid IN ('customers', 'payments')"
            )
            .await,
            "1"
        );
        assert_eq!(c.scalar("SELECT count(*) FROM tiers").await, "2");
        assert_eq!(c.scalar("SELECT count(*) FROM memos").await, "1");
        c.expect_error("SELECT count(*) FROM accounts", Code::NotFound)
            .await;
        // Writes and point queries go to the renamed table's shards.
        c.run("INSERT INTO customers VALUES (1001, 'new')").await;
        assert_eq!(
            c.scalar("SELECT owner FROM customers WHERE id = 1001")
                .await,
            "new"
        );

        // Onto an existing name, or from a missing one: refused, nothing changes.
        c.expect_error(
            "ALTER TABLE customers RENAME TO payments",
            Code::AlreadyExists,
        )
        .await;
        c.expect_error("ALTER TABLE accounts RENAME TO anything", Code::NotFound)
            .await;
        assert_eq!(c.scalar("SELECT count(*) FROM customers").await, "501");
    })
    .await
    .expect("the test finishes within 120 s");
}
