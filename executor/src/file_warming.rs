//! Taking over shard files in shared object storage, where a shard move copies nothing.
//!
//! The files stay where they are; the worker that now holds the shard checks that each is
//! there with the size and row count the catalog records, and reads its footer and page
//! index into the file metadata cache its scans use ([`shardfusion_common::shard_scan`]), so
//! its first queries on the shard do not pay for them.

use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::execution::context::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use prost::Message;
use shardfusion_common::storage::{DataRoot, validate_shard_file_path};
use shardfusion_common::wire::{CopiedFile, FileToCopy, WarmShardFilesRequest};

use crate::error::ExecutorError;

/// Checks and caches the files of a [`WarmShardFilesRequest`] (see the module docs).
pub async fn warm_shard_files(
    ctx: &SessionContext,
    body: &[u8],
) -> Result<Vec<CopiedFile>, ExecutorError> {
    let request = WarmShardFilesRequest::decode(body).map_err(|e| ExecutorError::BadRequest {
        reason: format!("cannot decode WarmShardFilesRequest: {e}"),
    })?;
    // Object stores answer each request slowly and many at once well.
    let pending: Vec<_> = request
        .files
        .into_iter()
        .map(|file| {
            let ctx = ctx.clone();
            async move { warm_one(&ctx, &file).await }
        })
        .collect();
    futures::stream::iter(pending)
        .buffered(CONCURRENT_FILES)
        .try_collect()
        .await
}

/// Files taken over at once.
const CONCURRENT_FILES: usize = 16;

async fn warm_one(ctx: &SessionContext, file: &FileToCopy) -> Result<CopiedFile, ExecutorError> {
    let location = validate_shard_file_path(&file.path)?;
    let runtime = ctx.runtime_env();
    let store = runtime.object_store(DataRoot::object_store_url())?;
    let unreadable = |reason: String| ExecutorError::TakeOver {
        path: file.path.clone(),
        reason,
    };
    let mismatch = |reason: String| ExecutorError::TakeOverMismatch {
        path: file.path.clone(),
        reason,
    };
    let head = match store.head(&location).await {
        Ok(head) => head,
        // Gone: retired by a change that committed meanwhile (the operation retries), not lost.
        Err(object_store::Error::NotFound { .. }) => {
            return Err(unreadable("it is not in the shared storage".to_string()));
        }
        Err(e) => return Err(unreadable(format!("reading its size: {e}"))),
    };
    if head.size != file.byte_size {
        return Err(mismatch(format!(
            "{} bytes stored, the catalog records {}",
            head.size, file.byte_size
        )));
    }
    // The same object description the scans use, so that they hit this cache entry.
    let scanned = PartitionedFile::new(location.to_string(), file.byte_size);
    let metadata = DFParquetMetadata::new(store.as_ref(), &scanned.object_meta)
        .with_file_metadata_cache(Some(runtime.cache_manager.get_file_metadata_cache()))
        .fetch_metadata()
        .await
        .map_err(|e| unreadable(format!("reading its footer: {e}")))?;
    let rows = u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
    if rows != file.row_count {
        return Err(mismatch(format!(
            "{rows} rows stored, the catalog records {}",
            file.row_count
        )));
    }
    Ok(CopiedFile {
        path: file.path.clone(),
        byte_size: head.size,
        row_count: rows,
        checksum: 0,
    })
}
