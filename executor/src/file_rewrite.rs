//! Copy-on-write rewrites of one shard file, for `UPDATE`, `DELETE` and column changes
//! ([`shardfusion_common::wire::ACTION_REWRITE_SHARD_FILE`]).
//!
//! The coordinator sends a plan fragment that reads the file (a `ShardScanExec` of it, checked
//! like any fragment) and outputs every row as the statement leaves it, with a last boolean
//! column saying whether the statement changed the row. The worker runs it where the file is
//! and writes the result as a new shard file — updated rows with their new values, deleted
//! rows left out — sorted as any write of the table. If no row changed, the new file is
//! removed and none is reported: the old file stays as it is. The new file has the scan's
//! columns, or the target schema the request gives (a column added, dropped or renamed). The old file is never touched
//! here; the coordinator swaps the files in the catalog and retires the old one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::StreamExt;
use prost::Message;
use shardfusion_common::ids::{ShardId, TableId};
use shardfusion_common::shard_scan::ShardScanExec;
use shardfusion_common::status::{from_status, with_sqlstate};
use shardfusion_common::storage::{DataRoot, shard_file_path};
use shardfusion_common::wire::{
    CHANGED_COLUMN, RewriteShardFileRequest, RewriteShardFileResponse, WrittenFile,
};
use tonic::Status;

use crate::error::ExecutorError;
use crate::fragment::decode_fragment;
use crate::shard_inventory::{ActiveWrites, delete_shard_file};
use crate::shard_writer::{FileLayout, write_shard_file};

/// Runs a [`RewriteShardFileRequest`] (an action body).
pub async fn rewrite_from_request(
    root: &DataRoot,
    active_writes: &ActiveWrites,
    ctx: Arc<TaskContext>,
    body: &[u8],
) -> Result<RewriteShardFileResponse, ExecutorError> {
    let bad = |reason: String| ExecutorError::BadRequest { reason };
    let request = RewriteShardFileRequest::decode(body)
        .map_err(|e| bad(format!("cannot decode RewriteShardFileRequest: {e}")))?;
    if uuid::Uuid::parse_str(&request.write_id).is_err() {
        return Err(bad("write_id must be a UUID".to_string()));
    }
    let plan = decode_fragment(&request.plan, &ctx)?;
    let path = shard_file_path(
        TableId(request.table_id),
        ShardId(request.shard_id),
        &request.write_id,
    );
    let _writing = active_writes.begin(&path);
    let layout = FileLayout {
        sort_by: (!request.sort_column.is_empty()).then_some(request.sort_column.as_str()),
        bloom_filter_columns: &request.bloom_filter_columns,
    };
    let target = match request.target_schema.is_empty() {
        true => None,
        false => Some(Arc::new(
            shardfusion_common::codec::decode_schema(&request.target_schema)
                .map_err(|e| bad(format!("cannot decode the target schema: {e}")))?,
        )),
    };
    let (changed_rows, written) =
        rewrite_shard_file(root, plan, ctx, &path, layout, target, request.delete).await?;
    Ok(RewriteShardFileResponse {
        changed_rows,
        written,
    })
}

/// Writes the rows of `plan` (see the module docs) as the shard file `path`; returns how many
/// rows the statement changed and the new file, if one is kept.
pub async fn rewrite_shard_file(
    root: &DataRoot,
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<TaskContext>,
    path: &str,
    layout: FileLayout<'_>,
    target: Option<SchemaRef>,
    delete: bool,
) -> Result<(u64, Option<WrittenFile>), ExecutorError> {
    let schema = plan.schema();
    let flag = schema.fields().len().checked_sub(1).filter(|last| {
        schema.field(*last).name() == CHANGED_COLUMN
            && *schema.field(*last).data_type() == datafusion::arrow::datatypes::DataType::Boolean
    });
    let Some(flag) = flag else {
        return Err(ExecutorError::BadRequest {
            reason: format!("a rewrite plan must end in the boolean column {CHANGED_COLUMN}"),
        });
    };
    // The rows are written with the table's own columns (its scan's), which also refuses a
    // NULL set into a NOT NULL column.
    let mut table_schema = None;
    let mut table_name = String::new();
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
            table_schema = Some(scan.schema());
            table_name = scan.table_name().to_string();
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    // The rows go into the table's columns: its scan's, or the new ones of a column change.
    let table_schema = target
        .or(table_schema)
        .filter(|t| t.fields().len() == flag)
        .ok_or_else(|| ExecutorError::BadRequest {
            reason: "a rewrite plan must read the whole rows of one shard file".to_string(),
        })?;
    let changed = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&changed);
    let rows = execute_stream(plan, ctx)
        .map_err(|e| ExecutorError::BadRequest {
            reason: format!("cannot run the rewrite plan: {e}"),
        })?
        .map(move |batch| {
            let batch = batch?;
            let marks = batch.column(flag).as_boolean();
            counted.fetch_add(marks.true_count() as u64, Ordering::Relaxed);
            let kept = if delete {
                let keep: BooleanArray = marks.iter().map(|m| Some(m != Some(true))).collect();
                filter_record_batch(&batch, &keep)?
            } else {
                batch
            };
            let columns = kept.columns()[..flag].to_vec();
            let null = table_schema
                .fields()
                .iter()
                .zip(&columns)
                .find(|(field, column)| !field.is_nullable() && column.null_count() > 0);
            if let Some((field, _)) = null {
                // As PostgreSQL says it, and as an INSERT's check does (not_null_violation).
                return Err(from_status(with_sqlstate(
                    Status::invalid_argument(format!(
                        "null value in column \"{}\" of relation \"{table_name}\" violates \
                         not-null constraint",
                        field.name()
                    )),
                    "23502",
                )));
            }
            let rows = RecordBatch::try_new(Arc::clone(&table_schema), columns).map_err(|e| {
                DataFusionError::Execution(format!("the changed rows do not fit the table: {e}"))
            })?;
            // A value set into a `jsonb`, `uuid`, `varchar(n)`, ... column must be one (and is
            // kept in its canonical form).
            shardfusion_common::pg_types::conform_values(&table_name, &table_schema, rows)
                .map_err(from_status)
        });
    let written = write_shard_file(root, path, layout, rows).await?;
    let changed = changed.load(Ordering::Relaxed);
    if changed == 0 {
        if let Some(file) = &written {
            delete_shard_file(root, &file.path).await?;
        }
        return Ok((0, None));
    }
    Ok((changed, written))
}
