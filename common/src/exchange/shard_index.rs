//! `shardfusion_shard_index(key, shard_count)`: the shard (of `shard_count`) a key's rows would
//! be placed in, were the key a distribution column — xxh3 of the canonical value, as
//! [`crate::hashing`] places rows. A shuffle that sends one join side into the other side's
//! shards routes its rows by it (`shard_aligned_output`). NULL keys go to shard 0.
//!
//! Workers decode the function by name through `ShardFusionCodec`.

use std::sync::Arc;

use datafusion::arrow::array::Int32Array;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, ScalarValue, SplitPoint, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_expr::{
    LexOrdering, Partitioning, PhysicalExpr, PhysicalSortExpr, RangePartitioning,
    ScalarFunctionExpr,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;

use crate::hashing::shard_indexes;

/// The function's name, as plans and EXPLAIN show it.
pub const SHARD_INDEX_FUNCTION: &str = "shardfusion_shard_index";

/// The column a shard-aligned producer adds for routing.
pub const SHARD_COLUMN: &str = "__shardfusion_shard";

/// See the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ShardIndexFunction {
    signature: Signature,
}

impl Default for ShardIndexFunction {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// The function, ready for a plan.
pub fn shard_index_function() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(ShardIndexFunction::default()))
}

impl ScalarUDFImpl for ShardIndexFunction {
    fn name(&self) -> &str {
        SHARD_INDEX_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [key, count] = args.args.as_slice() else {
            return exec_err!("{SHARD_INDEX_FUNCTION} takes a key and a shard count");
        };
        let shard_count = match count {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) if *n > 0 => *n as usize,
            other => {
                return exec_err!("{SHARD_INDEX_FUNCTION}: bad shard count {other:?}");
            }
        };
        let keys = key.to_array(args.number_rows)?;
        let shards = shard_indexes(&keys, shard_count)
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
        let array = Int32Array::from(shards);
        debug_assert_eq!(array.len(), args.number_rows);
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// `input` routed into `shard_count` partitions, partition `i` holding the rows whose `key`
/// hashes to shard `i` (and only those of `wanted` shards, when not all are). The output has
/// `input`'s columns plus [`SHARD_COLUMN`], which the reading side projects away.
pub fn shard_aligned_output(
    input: Arc<dyn ExecutionPlan>,
    key: Arc<dyn PhysicalExpr>,
    shard_count: usize,
    wanted: Option<&[usize]>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let shard = ScalarFunctionExpr::try_new(
        shard_index_function(),
        vec![
            key,
            Arc::new(Literal::new(ScalarValue::Int64(Some(shard_count as i64)))),
        ],
        schema.as_ref(),
        Arc::new(ConfigOptions::default()),
    )?;
    let mut exprs: Vec<ProjectionExpr> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| ProjectionExpr::new(Arc::new(Column::new(f.name(), i)), f.name().clone()))
        .collect();
    exprs.push(ProjectionExpr::new(
        Arc::new(shard),
        SHARD_COLUMN.to_string(),
    ));
    let mut routed: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(exprs, input)?);
    let shard_column: Arc<dyn PhysicalExpr> =
        Arc::new(Column::new(SHARD_COLUMN, schema.fields().len()));
    if let Some(wanted) = wanted {
        let list = wanted
            .iter()
            .map(|s| {
                Arc::new(Literal::new(ScalarValue::Int32(Some(*s as i32)))) as Arc<dyn PhysicalExpr>
            })
            .collect();
        let keep = datafusion::physical_expr::expressions::in_list(
            Arc::clone(&shard_column),
            list,
            &false,
            routed.schema().as_ref(),
        )?;
        routed = Arc::new(datafusion::physical_plan::filter::FilterExec::try_new(
            keep, routed,
        )?);
    }
    // Partition i takes the values v with i split points at or below v: split points
    // 1, 2, ..., n-1 send shard index i to partition i.
    let ordering = LexOrdering::new(vec![PhysicalSortExpr::new(
        shard_column,
        SortOptions::default(),
    )])
    .ok_or_else(|| datafusion::error::DataFusionError::Internal("empty ordering".into()))?;
    let split_points = (1..shard_count)
        .map(|i| SplitPoint::new(vec![ScalarValue::Int32(Some(i as i32))]))
        .collect();
    let partitioning = Partitioning::Range(RangePartitioning::try_new(ordering, split_points)?);
    Ok(Arc::new(RepartitionExec::try_new(routed, partitioning)?))
}

/// `read` (a shard-aligned shuffle's rows) without [`SHARD_COLUMN`].
pub fn without_shard_column(read: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let schema: Arc<Schema> = read.schema();
    let exprs: Vec<ProjectionExpr> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != SHARD_COLUMN)
        .map(|(i, f): (usize, &Arc<Field>)| {
            ProjectionExpr::new(Arc::new(Column::new(f.name(), i)), f.name().clone())
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(exprs, read)?))
}
