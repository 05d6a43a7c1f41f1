//! `CREATE INDEX` and `DROP INDEX` as a PostgreSQL schema writes them: recorded and listed in
//! `pg_indexes`, named as PostgreSQL names them, making the files written afterwards keep a
//! Parquet bloom filter for the indexed columns (point lookups stay correct), `CREATE UNIQUE
//! INDEX` enforcing its key, and all of it rolled back with its transaction.

use std::path::Path;
use std::time::Duration;

use parquet::file::reader::{FileReader, SerializedFileReader};
use shardfusion_tests::compare::rows;
use shardfusion_tests::conflict::sqlstate;
use shardfusion_tests::shard_files::on_disk;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

/// Whether every row group of every file of table `table_id` under `data_dir` keeps a bloom
/// filter for column `column`, and how many files were looked at.
fn bloom_filters(data_dir: &Path, table_id: &str, column: &str) -> (bool, usize) {
    let files: Vec<std::path::PathBuf> = on_disk(data_dir)
        .into_iter()
        .filter(|f| {
            f.to_string_lossy()
                .contains(&format!("/shards/t{table_id}/"))
        })
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .collect();
    let all = files.iter().all(|file| {
        let reader = SerializedFileReader::new(std::fs::File::open(file).expect("a shard file"))
            .expect("parquet");
        let meta = reader.metadata();
        (0..meta.num_row_groups()).all(|g| {
            let group = meta.row_group(g);
            (0..group.num_columns())
                .filter(|c| group.column(*c).column_path().string() == column)
                .all(|c| group.column(c).bloom_filter_offset().is_some())
        })
    });
    (all, files.len())
}

async fn indexes_of(c: &mut TestClient, table: &str) -> Vec<String> {
    rows(
        &c.run(&format!(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = '{table}' \
             ORDER BY indexname"
        ))
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn indexes_are_recorded_and_shape_the_files_written() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run(
            "CREATE TABLE events (tenant BIGINT NOT NULL, id BIGINT NOT NULL, kind TEXT, \
             PRIMARY KEY (tenant, id))",
        )
        .await;
        c.run("SELECT create_distributed_table('events', 'tenant', shard_count => 4)")
            .await;
        c.run("CREATE INDEX ON events (kind)").await;
        c.run(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_recent ON events USING btree \
             (tenant, id) WHERE id > 100",
        )
        .await;
        c.run("CREATE INDEX IF NOT EXISTS events_recent ON events (id)")
            .await;
        assert_eq!(
            indexes_of(&mut c, "events").await,
            vec![
                "events_kind_idx | CREATE INDEX events_kind_idx ON public.events USING btree (kind)",
                "events_pkey | CREATE UNIQUE INDEX events_pkey ON public.events USING btree (tenant, id)",
                "events_recent | CREATE INDEX events_recent ON public.events USING btree (tenant, id)",
            ]
        );
        let status = c
            .query("CREATE INDEX events_recent ON events (kind)")
            .await
            .expect_err("a name taken");
        assert_eq!(sqlstate(&status), Some("42P07"), "{status:?}");
        c.expect_error("CREATE INDEX ON events (nope)", Code::NotFound)
            .await;
        c.expect_error("CREATE INDEX ON nope (kind)", Code::NotFound)
            .await;

        // Files written from now on keep bloom filters for the indexed columns; lookups on
        // them are answered as without.
        c.run(
            "INSERT INTO events SELECT v % 10, v, 'kind ' || (v % 97) \
             FROM generate_series(1, 20000) t(v)",
        )
        .await;
        let events_id = cluster
            .coordinator()
            .cluster()
            .catalog
            .snapshot()
            .table("events")
            .map(|t| t.table_id.0.to_string())
            .expect("events");
        let (kept, files) = bloom_filters(cluster.data_dir(), &events_id, "kind");
        assert!(files > 0, "no files of events found");
        assert!(kept, "every file of events keeps a bloom filter on kind");
        assert_eq!(
            c.scalar("SELECT count(*) FROM events WHERE kind = 'kind 7'").await,
            "207"
        );
        assert_eq!(
            c.scalar("SELECT count(*) FROM events WHERE kind IN ('kind 7', 'kind 8', 'none')")
                .await,
            "414"
        );

        // CREATE UNIQUE INDEX adds a key: refused while rows repeat it, or without the
        // distribution column; enforced once added.
        let status = c
            .query("CREATE UNIQUE INDEX events_kind_key ON events (tenant, kind)")
            .await
            .expect_err("rows repeat the key");
        assert_eq!(sqlstate(&status), Some("23505"), "{status:?}");
        c.expect_error("CREATE UNIQUE INDEX ON events (id)", Code::InvalidArgument)
            .await;
        c.run("CREATE TABLE accounts (tenant BIGINT NOT NULL, email TEXT)")
            .await;
        c.run("INSERT INTO accounts VALUES (1, 'a@x'), (1, 'b@x'), (2, 'a@x')")
            .await;
        c.run("CREATE UNIQUE INDEX accounts_email ON accounts (tenant, email)")
            .await;
        let status = c
            .query("INSERT INTO accounts VALUES (1, 'a@x')")
            .await
            .expect_err("a repeated key");
        assert_eq!(sqlstate(&status), Some("23505"), "{status:?}");
        assert!(status.message().contains("accounts_email"), "{status:?}");

        // Dropping a unique index drops its key; an unnamed index takes a free name.
        c.run("DROP INDEX accounts_email").await;
        c.run("INSERT INTO accounts VALUES (1, 'a@x')").await;
        c.run("CREATE INDEX ON accounts (email)").await;
        c.run("CREATE INDEX ON accounts (email)").await;
        assert_eq!(
            indexes_of(&mut c, "accounts")
                .await
                .iter()
                .map(|r| r.split(" | ").next().unwrap_or_default().to_string())
                .collect::<Vec<_>>(),
            vec!["accounts_email_idx", "accounts_email_idx1"]
        );

        // DROP INDEX, and both statements in a transaction.
        c.run("DROP INDEX events_kind_idx").await;
        c.expect_error("DROP INDEX events_kind_idx", Code::NotFound)
            .await;
        c.run("DROP INDEX IF EXISTS events_kind_idx").await;
        let mut session = cluster.client().await;
        session.open_session().await.expect("session");
        session.run("BEGIN").await;
        session.run("CREATE INDEX events_kind ON events (kind)").await;
        session.run("DROP INDEX events_recent").await;
        session.run("ROLLBACK").await;
        assert_eq!(
            indexes_of(&mut c, "events")
                .await
                .iter()
                .map(|r| r.split(" | ").next().unwrap_or_default().to_string())
                .collect::<Vec<_>>(),
            vec!["events_pkey", "events_recent"]
        );
    })
    .await
    .expect("finishes in time");
}
