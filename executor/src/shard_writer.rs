//! Writes one stream of record batches as one Parquet file under the data root, recording
//! the file's column statistics (`column_stats`) batch by batch as the rows go by.
//!
//! A distributed table's file is written in [`SortedRuns`]: row groups of at most
//! [`RUN_ROWS`] rows, each sorted by the distribution column, with small pages and page
//! indexes, so a point query on that column reads a page per row group.
//!
//! The file appears under its final name only when complete (the object store writes to a
//! temporary name and renames). Whatever ends the write early leaves nothing on disk: an error
//! in the stream (including a stream the coordinator never completed, see
//! [`crate::write_completion`]) removes the file, and so does dropping the write midway (a
//! client that disconnects, a server shutting down), through [`RemoveUnlessKept`]. Only a
//! process crash can leave a staging file; orphan reconciliation collects those.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use futures::{Stream, StreamExt};
use object_store::buffered::BufWriter;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use shardfusion_common::column_stats::FileStatsCollector;
use shardfusion_common::column_stats::encoding::to_messages;
use shardfusion_common::storage::{DataRoot, validate_shard_file_path};
use shardfusion_common::wire::WrittenFile;

use crate::error::ExecutorError;
use crate::sorted_runs::{PAGE_ROWS, RUN_ROWS, SortedRuns};

/// How a shard file's rows are laid out.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileLayout<'a> {
    /// The column each row group is sorted by (a distributed table's distribution column).
    pub sort_by: Option<&'a str>,
    /// The columns a bloom filter is kept for (the table's indexed columns).
    pub bloom_filter_columns: &'a [String],
}

/// Writes `batches` to `path` (relative to `root`), laid out as `layout` says. Returns `None`
/// when no rows arrived.
pub async fn write_shard_file<S, E>(
    root: &DataRoot,
    path: &str,
    layout: FileLayout<'_>,
    batches: S,
) -> Result<Option<WrittenFile>, ExecutorError>
where
    S: Stream<Item = Result<RecordBatch, E>> + Send,
    E: Into<DataFusionError>,
{
    let store_path = validate_shard_file_path(path)?;
    let store = root.store();
    let mut guard = RemoveUnlessKept {
        file: Some(match root.shared() {
            Some(_) => Removal::Shared(store.clone(), store_path.clone()),
            None => Removal::Local(root.dir().join(path)),
        }),
    };
    let fail = |reason: String| ExecutorError::Write {
        path: path.to_string(),
        reason,
    };
    let mut batches = std::pin::pin!(batches);
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    let mut runs: Option<SortedRuns> = None;
    let mut stats: Option<FileStatsCollector> = None;
    let mut rows = 0u64;
    let result: Result<(), ExecutorError> = async {
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| ExecutorError::DataFusion(e.into()))?;
            if batch.num_rows() == 0 {
                continue;
            }
            let writer = match writer.as_mut() {
                Some(writer) => writer,
                None => {
                    runs = match layout.sort_by {
                        Some(column) => Some(
                            SortedRuns::by_column(batch.schema_ref(), column).ok_or_else(|| {
                                fail(format!("the rows have no column {column} to sort by"))
                            })?,
                        ),
                        None => None,
                    };
                    let sink = BufWriter::new(store.clone(), store_path.clone());
                    writer.insert(
                        AsyncArrowWriter::try_new(
                            sink,
                            batch.schema(),
                            Some(writer_properties(layout.bloom_filter_columns)),
                        )
                        .map_err(|e| fail(e.to_string()))?,
                    )
                }
            };
            rows += batch.num_rows() as u64;
            stats
                .get_or_insert_with(|| FileStatsCollector::new(&batch.schema()))
                .update(&batch);
            match runs.as_mut() {
                Some(runs) => {
                    for run in runs.push(batch).map_err(|e| fail(e.to_string()))? {
                        write_row_group(writer, &run).await.map_err(fail)?;
                    }
                }
                None => writer
                    .write(&batch)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
            }
        }
        if let (Some(writer), Some(runs)) = (writer.as_mut(), runs.as_mut())
            && let Some(run) = runs.finish().map_err(|e| fail(e.to_string()))?
        {
            write_row_group(writer, &run).await.map_err(fail)?;
        }
        Ok(())
    }
    .await;
    match (result, writer) {
        (Ok(()), None) => Ok(None),
        (Ok(()), Some(writer)) => {
            writer.close().await.map_err(|e| fail(e.to_string()))?;
            let meta = store
                .head(&store_path)
                .await
                .map_err(|e| fail(e.to_string()))?;
            guard.keep();
            Ok(Some(WrittenFile {
                path: path.to_string(),
                row_count: rows,
                byte_size: meta.size,
                columns: stats.map(|s| to_messages(&s.finish())).unwrap_or_default(),
            }))
        }
        (Err(e), writer) => {
            // Dropping an unfinished upload removes its staging file; the final name never
            // appears.
            drop(writer);
            let _ = store.delete(&store_path).await;
            Err(e)
        }
    }
}

/// Largest dictionary page of a column chunk: room for the dictionary of a low-cardinality
/// column (flags, priorities, years of dates), which keeps it.
const DICTIONARY_BYTES: usize = 32 * 1024;

/// Snappy pages of at most [`PAGE_ROWS`] rows, row groups of at most [`RUN_ROWS`], with
/// page-level statistics (the column index) on every column. A column's dictionary stops
/// growing at [`DICTIONARY_BYTES`] (the rest of the chunk is written plain): a reader
/// decompresses a chunk's whole dictionary to read any page of it, and a near-unique column
/// (keys, prices, comments) would otherwise make every point query decode hundreds of KiB.
/// The columns of `bloom_filter_columns` get a bloom filter in every row group.
fn writer_properties(bloom_filter_columns: &[String]) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_page_size_limit(DICTIONARY_BYTES)
        .set_max_row_group_row_count(Some(RUN_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page);
    for column in bloom_filter_columns {
        let path = parquet::schema::types::ColumnPath::from(column.as_str());
        builder = builder.set_column_bloom_filter_enabled(path, true);
    }
    builder.build()
}

/// Writes `run` as a row group of its own.
async fn write_row_group(
    writer: &mut AsyncArrowWriter<BufWriter>,
    run: &RecordBatch,
) -> Result<(), String> {
    writer.write(run).await.map_err(|e| e.to_string())?;
    writer.flush().await.map_err(|e| e.to_string())
}

/// Removes a shard file when dropped before [`RemoveUnlessKept::keep`], so a write dropped at
/// any await (even after the rename, before the result was sent) leaves no file behind. Its
/// staging files (`<name>#<n>`) go too: the object store removes them on drop only through
/// its runtime, which is gone when the worker is shutting down.
struct RemoveUnlessKept {
    file: Option<Removal>,
}

/// The file a [`RemoveUnlessKept`] removes.
enum Removal {
    /// On the node's disk, with its staging files.
    Local(std::path::PathBuf),
    /// In shared object storage: an upload not completed is never visible, a completed one
    /// is deleted in the background (what that misses, reconciliation collects).
    Shared(Arc<dyn ObjectStore>, object_store::path::Path),
}

impl RemoveUnlessKept {
    fn keep(&mut self) {
        self.file = None;
    }
}

impl Drop for RemoveUnlessKept {
    fn drop(&mut self) {
        let file = match self.file.take() {
            None => return,
            Some(Removal::Local(file)) => file,
            Some(Removal::Shared(store, path)) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _ = store.delete(&path).await;
                    });
                }
                return;
            }
        };
        // Usually absent (nothing was renamed yet); any other failure leaves an unlisted
        // file that reconciliation collects.
        let _ = std::fs::remove_file(&file);
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return;
        };
        let staging = format!("{}#", name.to_string_lossy());
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&staging) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}
