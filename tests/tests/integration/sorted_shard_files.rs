//! The layout of a distributed table's shard files, as a point query needs it: each row group
//! holds at most 122,880 rows sorted by the distribution column, in pages of at most 4,096
//! rows, with the page indexes (column and offset indexes) that let a reader skip to the page
//! of one key. Rows arrive in scrambled order, several row groups' worth per shard; every row
//! is in exactly one file, whole, and point queries on the distribution key find it.

use std::time::Duration;

use arrow::array::{Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::PageIndexPolicy;
use shardfusion_tests::TestCluster;
use shardfusion_tests::shard_files::on_disk;

/// Rows inserted; with 2 shards each holds about 150,000: more than one row group.
const ROWS: i64 = 300_000;
const RUN_ROWS: usize = 122_880;
const PAGE_ROWS: usize = 4_096;

/// Row `i` of the insert has id `(i * 7919) % ROWS`: every id once, in scrambled order.
const INSERT: &str = "INSERT INTO events SELECT (value * 7919) % 300000 AS id, \
                      'event ' || ((value * 7919) % 300000) AS name, value AS arrived \
                      FROM generate_series(0, 299999) AS s(value)";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shard_files_are_sorted_by_the_distribution_column_with_page_indexes() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        client
            .run("CREATE TABLE events (id BIGINT NOT NULL, name TEXT, arrived BIGINT)")
            .await;
        client
            .run("SELECT create_distributed_table('events', 'id', shard_count => 2)")
            .await;
        client.run(INSERT).await;

        let files = on_disk(cluster.data_dir());
        assert_eq!(files.len(), 2, "one file per shard: {files:?}");
        let mut ids = Vec::new();
        for path in &files {
            let file = std::fs::File::open(path).expect("open shard file");
            let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
                file,
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
            )
            .expect("a Parquet file");
            let metadata = std::sync::Arc::clone(reader.metadata());
            let groups = metadata.row_groups();
            assert!(
                groups.len() >= 2,
                "{path:?} holds {} row group(s)",
                groups.len()
            );
            let offsets = metadata.offset_index().expect("offset indexes are written");
            assert!(
                metadata.column_index().is_some(),
                "column indexes are written"
            );
            for (g, group) in groups.iter().enumerate() {
                let rows = group.num_rows() as usize;
                assert!(
                    rows <= RUN_ROWS,
                    "row group {g} of {path:?} holds {rows} rows"
                );
                for column in &offsets[g] {
                    let pages = column.page_locations().len();
                    assert!(
                        pages >= rows.div_ceil(PAGE_ROWS),
                        "row group {g} of {path:?}: {rows} rows in only {pages} pages"
                    );
                }
            }
            // Read row group by row group: ids ascend within each, and every row is whole.
            for g in 0..groups.len() {
                let file = std::fs::File::open(path).expect("open shard file");
                let batches = ParquetRecordBatchReaderBuilder::try_new(file)
                    .expect("a Parquet file")
                    .with_row_groups(vec![g])
                    .build()
                    .expect("reader");
                let mut group_ids = Vec::new();
                for batch in batches {
                    let batch = batch.expect("batch");
                    let id = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("id is BIGINT");
                    let name = batch
                        .column(1)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .expect("name is TEXT");
                    for i in 0..batch.num_rows() {
                        assert_eq!(name.value(i), format!("event {}", id.value(i)));
                    }
                    group_ids.extend(id.values().iter().copied());
                }
                assert!(
                    group_ids.is_sorted(),
                    "row group {g} of {path:?} is not sorted by id"
                );
                ids.extend(group_ids);
            }
        }
        ids.sort_unstable();
        assert_eq!(ids, (0..ROWS).collect::<Vec<_>>(), "every row once");

        for key in [0, 1, 122_880, 150_001, 299_999] {
            assert_eq!(
                client
                    .scalar(&format!("SELECT name FROM events WHERE id = {key}"))
                    .await,
                format!("event {key}")
            );
        }
        // The scrambled arrival order is still each row's own.
        assert_eq!(
            client
                .scalar("SELECT arrived FROM events WHERE id = 7919")
                .await,
            "1"
        );
    })
    .await
    .expect("the test finishes within 240 s");
}
