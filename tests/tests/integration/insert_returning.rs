//! `INSERT ... RETURNING` as applications use it: the `serial` keys just handed out, whole
//! rows, expressions and aliases, `INSERT ... SELECT`; only the rows `ON CONFLICT DO NOTHING`
//! inserted; inside a transaction; and a bad `RETURNING` list refused before anything is
//! written.

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use shardfusion_tests::TestCluster;
use tonic::Code;

/// Column `i` of `batches`, as text, row by row.
fn column(batches: &[RecordBatch], i: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |r| array_value_to_string(b.column(i), r).expect("text"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insert_returning_gives_the_rows_written() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE ads (company_id bigint NOT NULL, id bigserial, title text, \
               clicks int DEFAULT 0, PRIMARY KEY (company_id, id)); \
             SELECT create_distributed_table('ads', 'company_id', shard_count => 4)",
        )
        .await;
        // The keys the sequence handed out, in the rows' order.
        let rows = c
            .run(
                "INSERT INTO ads (company_id, title) VALUES (1, 'a'), (2, 'b'), (1, 'c') \
                 RETURNING id, title",
            )
            .await;
        assert_eq!(column(&rows, 0), ["1", "2", "3"]);
        assert_eq!(column(&rows, 1), ["a", "b", "c"]);
        // Whole rows, with the defaults filled in.
        let rows = c
            .run("INSERT INTO ads (company_id, title) VALUES (3, 'd') RETURNING *")
            .await;
        assert_eq!(rows[0].schema().fields().len(), 4);
        assert_eq!(column(&rows, 3), ["0"]);
        // Expressions over the table's alias.
        assert_eq!(
            c.scalar(
                "INSERT INTO ads AS x (company_id, title) VALUES (4, 'e') \
                 RETURNING upper(x.title) || ':' || x.clicks || ':' || (x.id > 3) AS summary"
            )
            .await,
            "E:0:true"
        );
        // INSERT ... SELECT ... RETURNING.
        let rows = c
            .run(
                "INSERT INTO ads (company_id, title) \
                 SELECT company_id, title || '2' FROM ads WHERE company_id = 1 \
                 RETURNING title",
            )
            .await;
        let mut titles = column(&rows, 0);
        titles.sort();
        assert_eq!(titles, ["a2", "c2"]);
        // ON CONFLICT DO NOTHING returns the rows it inserted only.
        let rows = c
            .run(
                "INSERT INTO ads (company_id, id, title) VALUES (1, 1, 'dup'), (9, 100, 'new') \
                 ON CONFLICT DO NOTHING RETURNING company_id, id",
            )
            .await;
        assert_eq!(column(&rows, 1), ["100"]);
        // In a transaction: returned at once, gone with the ROLLBACK.
        let mut s = cluster.client().await;
        s.open_session().await.expect("a session");
        s.run("BEGIN").await;
        assert_eq!(
            s.scalar("INSERT INTO ads (company_id, title) VALUES (7, 'tx') RETURNING title")
                .await,
            "tx"
        );
        s.run("ROLLBACK").await;
        assert_eq!(
            c.scalar("SELECT count(*) FROM ads WHERE company_id = 7")
                .await,
            "0"
        );
        // A RETURNING list that does not fit the table writes nothing.
        let before = c.scalar("SELECT count(*) FROM ads").await;
        let message = c
            .expect_error(
                "INSERT INTO ads (company_id, title) VALUES (8, 'z') RETURNING nope",
                Code::InvalidArgument,
            )
            .await;
        assert!(message.contains("RETURNING nope"), "{message}");
        assert_eq!(c.scalar("SELECT count(*) FROM ads").await, before);
        // So does one that fails on the rows (a division by zero), outside a transaction too.
        c.expect_error(
            "INSERT INTO ads (company_id, title) VALUES (8, 'z') RETURNING 1 / (clicks - clicks)",
            Code::InvalidArgument,
        )
        .await;
        assert_eq!(c.scalar("SELECT count(*) FROM ads").await, before);
    })
    .await
    .expect("within the time limit");
}
