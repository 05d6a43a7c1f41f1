//! `shardfusion_shard_index(key, shards)`: the shard a key's rows would be placed in, were the
//! key the distribution column of a table with those shards — xxh3 of the canonical value, as
//! [`crate::hashing`] places rows. `shards` is a shard count when the table's hash ranges are
//! the even ones a new table gets, else the list of its shards' first hashes (a table with
//! an isolated tenant). A shuffle that sends one join side into the other side's shards routes
//! its rows by it (`shard_aligned_output`). NULL keys go to shard 0.
//!
//! Workers decode the function by name through `ShardFusionCodec`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int32Array, ListArray};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::Int32Type;
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

use crate::hashing::{ShardRanges, shard_indexes};

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
        let [key, shards] = args.args.as_slice() else {
            return exec_err!("{SHARD_INDEX_FUNCTION} takes a key and the shards' hash ranges");
        };
        let ColumnarValue::Scalar(shards) = shards else {
            return exec_err!("{SHARD_INDEX_FUNCTION}: the shards must be a constant");
        };
        let ranges = ranges_from_scalar(shards)?;
        let keys = key.to_array(args.number_rows)?;
        let shards = shard_indexes(&keys, &ranges)
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
        let array = Int32Array::from(shards);
        debug_assert_eq!(array.len(), args.number_rows);
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// How a plan spells `ranges` as the function's second argument: the shard count when they
/// are even, else the list of their first hashes.
pub fn ranges_to_scalar(ranges: &ShardRanges) -> ScalarValue {
    if ranges.is_even() {
        return ScalarValue::Int64(Some(ranges.len() as i64));
    }
    let starts = ranges.starts().iter().map(|s| Some(*s));
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(std::iter::once(Some(starts)));
    ScalarValue::List(Arc::new(list))
}

/// The inverse of [`ranges_to_scalar`].
fn ranges_from_scalar(value: &ScalarValue) -> Result<ShardRanges> {
    match value {
        ScalarValue::Int64(Some(n)) if *n > 0 => Ok(ShardRanges::even(*n as usize)),
        ScalarValue::List(list) if list.len() == 1 && !list.is_null(0) => {
            let starts = list.value(0);
            let Some(starts) = starts.as_primitive_opt::<Int32Type>() else {
                return exec_err!("{SHARD_INDEX_FUNCTION}: shard starts must be Int32");
            };
            let starts: Vec<i32> = starts.iter().flatten().collect();
            let ranges: Vec<(i32, i32)> = starts
                .iter()
                .enumerate()
                .map(|(i, start)| {
                    let end = starts
                        .get(i + 1)
                        .map_or(i32::MAX, |next| next.saturating_sub(1));
                    (*start, end)
                })
                .collect();
            ShardRanges::from_ranges(&ranges)
                .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))
        }
        other => exec_err!("{SHARD_INDEX_FUNCTION}: bad shards {other:?}"),
    }
}

/// `input` routed into one partition per shard of `ranges`, partition `i` holding the rows
/// whose `key` hashes to shard `i` (and only those of `wanted` shards, when not all are). The
/// output has `input`'s columns plus [`SHARD_COLUMN`], which the reading side projects away.
pub fn shard_aligned_output(
    input: Arc<dyn ExecutionPlan>,
    key: Arc<dyn PhysicalExpr>,
    ranges: &ShardRanges,
    wanted: Option<&[usize]>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let shard = ScalarFunctionExpr::try_new(
        shard_index_function(),
        vec![key, Arc::new(Literal::new(ranges_to_scalar(ranges)))],
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
    let split_points = (1..ranges.len())
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::datatypes::Field;

    use super::*;
    use crate::hashing::{hash_array, shard_range};

    #[test]
    fn keys_go_to_the_shard_of_uneven_ranges_that_holds_their_hash() -> Result<()> {
        let (lo, hi) = shard_range(1, 3);
        let list = [
            shard_range(0, 3),
            (lo, 99),
            (100, 100),
            (101, hi),
            shard_range(2, 3),
        ];
        let ranges = ShardRanges::from_ranges(&list)
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
        let spelled = ranges_to_scalar(&ranges);
        assert!(matches!(spelled, ScalarValue::List(_)));
        assert_eq!(ranges_from_scalar(&spelled)?, ranges);
        let even = ShardRanges::even(8);
        assert_eq!(ranges_to_scalar(&even), ScalarValue::Int64(Some(8)));
        assert_eq!(ranges_from_scalar(&ranges_to_scalar(&even))?, even);

        let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(0..5000));
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(Arc::clone(&keys)),
                ColumnarValue::Scalar(spelled.clone()),
            ],
            arg_fields: vec![
                Arc::new(Field::new("k", DataType::Int64, false)),
                Arc::new(Field::new("shards", spelled.data_type(), false)),
            ],
            number_rows: keys.len(),
            return_field: Arc::new(Field::new("shard", DataType::Int32, false)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(shards) = ShardIndexFunction::default().invoke_with_args(args)?
        else {
            panic!("an array");
        };
        let hashes = hash_array(&keys, "k")
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
        for (shard, hash) in shards
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .zip(hashes)
        {
            let (min, max) = list[*shard as usize];
            assert!(min <= hash && hash <= max);
        }
        Ok(())
    }
}
