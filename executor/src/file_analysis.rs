//! `ANALYZE` on a node: reading committed shard files back and computing their column
//! statistics, exactly as the writer would have recorded them.
//!
//! Paths are checked like every other path a request names (relative, inside the data root).
//! A file that is not there (deleted since the coordinator looked) is left out of the answer
//! rather than failing the whole request; the coordinator stores what comes back.

use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use shardfusion_common::column_stats::FileStatsCollector;
use shardfusion_common::column_stats::encoding::to_messages;
use shardfusion_common::storage::{
    DATA_STORE_URL, DataRoot, DataRootRegistry, validate_shard_file_path,
};
use shardfusion_common::wire::WrittenFile;

use crate::error::ExecutorError;

/// The statistics of each file of `paths` that exists under `root`.
pub async fn analyze_files(
    root: &DataRoot,
    paths: &[String],
) -> Result<Vec<WrittenFile>, ExecutorError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(DataRootRegistry::new(root.clone())))
        .build_arc()?;
    // Read columns with the types they were written with (no string views), so the bounds
    // have the table's types.
    let mut config = SessionConfig::new();
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        if let Some(file) = analyze_file(&ctx, root, path).await? {
            out.push(file);
        }
    }
    Ok(out)
}

/// The statistics of one file; `None` if it does not exist.
async fn analyze_file(
    ctx: &SessionContext,
    root: &DataRoot,
    path: &str,
) -> Result<Option<WrittenFile>, ExecutorError> {
    let store_path = validate_shard_file_path(path)?;
    let store = root.store();
    let fail = |reason: String| ExecutorError::Analyze {
        path: path.to_string(),
        reason,
    };
    let meta = match store.head(&store_path).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let url = format!("{DATA_STORE_URL}{store_path}");
    let frame = ctx
        .read_parquet(url, ParquetReadOptions::default())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let mut collector = FileStatsCollector::new(&schema);
    let mut batches = frame
        .execute_stream()
        .await
        .map_err(|e| fail(e.to_string()))?;
    while let Some(batch) = batches.try_next().await.map_err(|e| fail(e.to_string()))? {
        collector.update(&batch);
    }
    let rows = collector.rows();
    Ok(Some(WrittenFile {
        path: path.to_string(),
        row_count: rows,
        byte_size: meta.size,
        columns: to_messages(&collector.finish()),
    }))
}
