//! `REFERENCES` and `FOREIGN KEY` as a multi-tenant schema declares them: accepted, recorded
//! with their table, reported by Flight SQL's key commands, kept through a rename of the
//! referenced table, and holding that table against `DROP` (SQLSTATE 2BP01). They are not
//! enforced.

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow_flight::sql::{CommandGetCrossReference, CommandGetExportedKeys, CommandGetImportedKeys};
use futures::TryStreamExt;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

/// Each key column as `fk_table.fk_column->pk_table.pk_column name seq update delete`.
async fn keys(c: &mut TestClient, info: arrow_flight::FlightInfo) -> Vec<String> {
    let mut rows = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let batches: Vec<RecordBatch> = c
            .flight_sql()
            .do_get(ticket)
            .await
            .expect("do_get")
            .try_collect()
            .await
            .expect("rows");
        for batch in batches {
            let text = |column: &str, row: usize| {
                let column = batch.column_by_name(column).expect("a column");
                arrow::util::display::array_value_to_string(column, row).expect("shown")
            };
            for row in 0..batch.num_rows() {
                rows.push(format!(
                    "{}.{}->{}.{} {} {} {} {}",
                    text("fk_table_name", row),
                    text("fk_column_name", row),
                    text("pk_table_name", row),
                    text("pk_column_name", row),
                    text("fk_key_name", row),
                    text("key_sequence", row),
                    text("update_rule", row),
                    text("delete_rule", row),
                ));
            }
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreign_keys_are_recorded_reported_and_hold_their_table() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE companies (id bigserial PRIMARY KEY, name text NOT NULL); \
             CREATE TABLE campaigns (id bigserial, company_id bigint REFERENCES companies (id) \
               ON DELETE CASCADE, name text NOT NULL, PRIMARY KEY (company_id, id)); \
             CREATE TABLE ads (id bigserial, company_id bigint, campaign_id bigint, \
               name text NOT NULL, PRIMARY KEY (company_id, id), \
               CONSTRAINT ads_campaign FOREIGN KEY (company_id, campaign_id) \
               REFERENCES campaigns (company_id, id)); \
             SELECT create_distributed_table('companies', 'id', shard_count => 4); \
             SELECT create_distributed_table('campaigns', 'company_id', colocate_with => 'companies'); \
             SELECT create_distributed_table('ads', 'company_id', colocate_with => 'companies')",
        )
        .await;
        let imported = CommandGetImportedKeys {
            catalog: None,
            db_schema: None,
            table: "ads".into(),
        };
        let info = c.flight_sql().get_imported_keys(imported).await.expect("info");
        assert_eq!(
            keys(&mut c, info).await,
            [
                "ads.company_id->campaigns.company_id ads_campaign 1 3 3",
                "ads.campaign_id->campaigns.id ads_campaign 2 3 3",
            ]
        );
        let exported = CommandGetExportedKeys {
            catalog: None,
            db_schema: None,
            table: "companies".into(),
        };
        let info = c.flight_sql().get_exported_keys(exported).await.expect("info");
        assert_eq!(
            keys(&mut c, info).await,
            ["campaigns.company_id->companies.id campaigns_company_id_fkey 1 3 0"]
        );
        // The referenced table keeps its keys through a rename, and cannot be dropped while
        // a key references it.
        c.run("ALTER TABLE campaigns RENAME TO flights").await;
        let cross = CommandGetCrossReference {
            pk_catalog: None,
            pk_db_schema: None,
            pk_table: "flights".into(),
            fk_catalog: None,
            fk_db_schema: None,
            fk_table: "ads".into(),
        };
        let info = c.flight_sql().get_cross_reference(cross).await.expect("info");
        assert_eq!(keys(&mut c, info).await.len(), 2);
        let message = c
            .expect_error("DROP TABLE companies", Code::FailedPrecondition)
            .await;
        assert!(message.contains("flights_company_id_fkey") || message.contains("campaigns_company_id_fkey"), "{message}");
        // Not enforced: a row without a match is written.
        c.run("INSERT INTO ads (company_id, campaign_id, name) VALUES (7, 7, 'orphan')")
            .await;
        assert_eq!(c.scalar("SELECT count(*) FROM ads").await, "1");
        // Keys naming what does not exist are refused.
        c.expect_error(
            "CREATE TABLE bad (a bigint REFERENCES nowhere (id))",
            Code::NotFound,
        )
        .await;
        c.expect_error(
            "CREATE TABLE bad (a bigint REFERENCES companies (nope))",
            Code::NotFound,
        )
        .await;
        // Without columns, REFERENCES names the referenced table's primary key.
        c.run("CREATE TABLE good (a bigint REFERENCES companies)").await;
        let info = (c.flight_sql())
            .get_imported_keys(CommandGetImportedKeys {
                catalog: None,
                db_schema: None,
                table: "good".into(),
            })
            .await
            .expect("info");
        assert_eq!(
            keys(&mut c, info).await,
            ["good.a->companies.id good_a_fkey 1 3 3"]
        );
        c.run("CREATE TABLE nokey (x bigint)").await;
        c.expect_error("CREATE TABLE bad (a bigint REFERENCES nokey)", Code::InvalidArgument)
            .await;
        // Dropped together, in any order, the tables go.
        c.run("DROP TABLE companies, ads, flights, good, nokey").await;
        assert_eq!(
            c.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('ads', 'flights', 'companies')")
                .await,
            "0"
        );
    })
    .await
    .expect("within the time limit");
}
