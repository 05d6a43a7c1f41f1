//! [`FileStatsCollector`]: the statistics of a file, gathered batch by batch as it streams.
//!
//! Per batch and column: the NULL count from the array's validity, the min and max with
//! DataFusion's vectorized `min_batch`/`max_batch` kernels (folded into the running bounds),
//! and one xxh3 hash per non-NULL value into the column's [`HyperLogLog`]. Nothing else looks
//! at individual rows.
//!
//! Types without a meaningful order (nested types, dictionaries, intervals, half floats) get
//! no bounds; types whose values are not hashed here (nested, dictionaries) get no sketch.
//! A float column that holds NaN gets no bounds for the file: orderings disagree on where NaN
//! goes, and a wrong bound would prune rows a query must see.

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, PrimitiveArray, RecordBatch,
    downcast_primitive_array,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, ToByteSlice};
use datafusion::common::ScalarValue;
use datafusion_functions_aggregate_common::min_max::{max_batch, min_batch};

use super::{Bound, ColumnStats, FileStats, HyperLogLog};

/// Gathers [`FileStats`] over the batches of one file.
#[derive(Debug)]
pub struct FileStatsCollector {
    columns: Vec<ColumnCollector>,
    rows: u64,
}

#[derive(Debug)]
struct ColumnCollector {
    name: String,
    nulls: u64,
    /// Whether bounds are still being tracked (the type has them and no NaN was seen).
    bounded: bool,
    min: Option<ScalarValue>,
    max: Option<ScalarValue>,
    distinct: Option<HyperLogLog>,
}

impl FileStatsCollector {
    pub fn new(schema: &SchemaRef) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|field| ColumnCollector {
                name: field.name().clone(),
                nulls: 0,
                bounded: has_bounds(field.data_type()),
                min: None,
                max: None,
                distinct: is_hashed(field.data_type()).then(HyperLogLog::new),
            })
            .collect();
        Self { columns, rows: 0 }
    }

    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Folds in one batch, whose columns are those of the schema given to [`Self::new`].
    /// Never fails: what cannot be computed for a column is left unknown, and the write it
    /// accompanies goes on.
    pub fn update(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        for (column, array) in self.columns.iter_mut().zip(batch.columns()) {
            column.update(array);
        }
    }

    /// The statistics of every row seen.
    pub fn finish(self) -> FileStats {
        FileStats {
            columns: self
                .columns
                .into_iter()
                .map(|c| {
                    let (min, max) = if c.bounded {
                        (c.min.and_then(Bound::lower), c.max.and_then(Bound::upper))
                    } else {
                        (None, None)
                    };
                    let stats = ColumnStats {
                        null_count: c.nulls,
                        min,
                        max,
                        distinct: c.distinct,
                    };
                    (c.name, stats)
                })
                .collect(),
        }
    }
}

impl ColumnCollector {
    fn update(&mut self, array: &ArrayRef) {
        let nulls = array.logical_null_count();
        self.nulls += nulls as u64;
        if nulls == array.len() {
            return;
        }
        if self.bounded {
            let (Ok(low), Ok(high)) = (min_batch(array), max_batch(array)) else {
                self.drop_bounds();
                return self.hash(array);
            };
            if is_nan(&low) || is_nan(&high) {
                self.drop_bounds();
            } else {
                self.min = fold(self.min.take(), low, std::cmp::Ordering::Less);
                self.max = fold(self.max.take(), high, std::cmp::Ordering::Greater);
                // Values of one column always compare; if not, stop tracking rather than guess.
                if self.min.is_none() || self.max.is_none() {
                    self.bounded = false;
                }
            }
        }
        self.hash(array);
    }

    fn hash(&mut self, array: &ArrayRef) {
        if let Some(sketch) = self.distinct.as_mut() {
            hash_into(sketch, array);
        }
    }

    fn drop_bounds(&mut self) {
        self.bounded = false;
        self.min = None;
        self.max = None;
    }
}

/// The running extreme after seeing `candidate`; `None` if the two do not compare.
fn fold(
    current: Option<ScalarValue>,
    candidate: ScalarValue,
    keep_if: std::cmp::Ordering,
) -> Option<ScalarValue> {
    match current {
        None => Some(candidate),
        Some(current) if candidate.is_null() => Some(current),
        Some(current) => match candidate.partial_cmp(&current)? {
            ordering if ordering == keep_if => Some(candidate),
            _ => Some(current),
        },
    }
}

fn is_nan(value: &ScalarValue) -> bool {
    match value {
        ScalarValue::Float32(Some(v)) => v.is_nan(),
        ScalarValue::Float64(Some(v)) => v.is_nan(),
        _ => false,
    }
}

/// Types whose values have an order DataFusion filters and `min_batch` agree on.
pub fn has_bounds(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Decimal32(_, _)
            | Decimal64(_, _)
            | Decimal128(_, _)
            | Decimal256(_, _)
            | Date32
            | Date64
            | Time32(_)
            | Time64(_)
            | Timestamp(_, _)
            | Duration(_)
            | Utf8
            | LargeUtf8
            | Utf8View
            | Binary
            | LargeBinary
            | BinaryView
            | FixedSizeBinary(_)
    )
}

/// Types whose values [`hash_into`] hashes.
fn is_hashed(data_type: &DataType) -> bool {
    data_type.is_primitive()
        || matches!(
            data_type,
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
        )
}

/// Adds every non-NULL value of `array` to `sketch`, hashing its canonical bytes: the
/// little-endian native value for primitives, the UTF-8 or raw bytes otherwise.
fn hash_into(sketch: &mut HyperLogLog, array: &ArrayRef) {
    use DataType::*;
    match array.data_type() {
        Boolean => {
            for value in array.as_boolean().iter().flatten() {
                sketch.add_bytes(&[u8::from(value)]);
            }
        }
        Utf8 => add_all(sketch, array.as_string::<i32>().iter()),
        LargeUtf8 => add_all(sketch, array.as_string::<i64>().iter()),
        Utf8View => add_all(sketch, array.as_string_view().iter()),
        Binary => add_all(sketch, array.as_binary::<i32>().iter()),
        LargeBinary => add_all(sketch, array.as_binary::<i64>().iter()),
        BinaryView => add_all(sketch, array.as_binary_view().iter()),
        FixedSizeBinary(_) => add_all(sketch, array.as_fixed_size_binary().iter()),
        _ => downcast_primitive_array!(
            array => add_primitive(sketch, array),
            _ => {}
        ),
    }
}

fn add_all<'a, B: AsRef<[u8]> + ?Sized + 'a>(
    sketch: &mut HyperLogLog,
    values: impl Iterator<Item = Option<&'a B>>,
) {
    for value in values.flatten() {
        sketch.add_bytes(value.as_ref());
    }
}

fn add_primitive<T: ArrowPrimitiveType>(sketch: &mut HyperLogLog, array: &PrimitiveArray<T>) {
    let values = array.values();
    match array.nulls() {
        None => {
            for value in values.iter() {
                sketch.add_bytes(value.to_byte_slice());
            }
        }
        Some(nulls) => {
            for (i, value) in values.iter().enumerate() {
                if nulls.is_valid(i) {
                    sketch.add_bytes(value.to_byte_slice());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, Int32Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::common::Result;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
        ]))
    }

    fn batch(i: Vec<Option<i32>>, s: Vec<Option<&str>>, f: Vec<Option<f64>>) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(i)),
                Arc::new(StringArray::from(s)),
                Arc::new(Float64Array::from(f)),
            ],
        )
        .expect("present in the test data")
    }

    #[test]
    fn bounds_nulls_and_distinct_span_batches() -> Result<()> {
        let mut collector = FileStatsCollector::new(&schema());
        collector.update(&batch(
            vec![Some(5), None, Some(3)],
            vec![Some("b"), Some("b"), None],
            vec![Some(1.5), None, None],
        ));
        collector.update(&batch(
            vec![Some(9), Some(3), None],
            vec![None, Some("a"), Some("c")],
            vec![Some(-2.0), Some(0.0), None],
        ));
        assert_eq!(collector.rows(), 6);
        let stats = collector.finish();
        let i = stats.column("i").expect("present in the test data");
        assert_eq!(i.null_count, 2);
        assert_eq!(i.min_value(), Some(&ScalarValue::Int32(Some(3))));
        assert_eq!(i.max_value(), Some(&ScalarValue::Int32(Some(9))));
        assert!(i.min.as_ref().expect("present in the test data").exact);
        assert_eq!(
            i.distinct
                .as_ref()
                .expect("present in the test data")
                .estimate(),
            3
        );
        let s = stats.column("s").expect("present in the test data");
        assert_eq!(s.null_count, 2);
        assert_eq!(s.min_value(), Some(&ScalarValue::from("a")));
        assert_eq!(s.max_value(), Some(&ScalarValue::from("c")));
        assert_eq!(
            s.distinct
                .as_ref()
                .expect("present in the test data")
                .estimate(),
            3
        );
        let f = stats.column("f").expect("present in the test data");
        assert_eq!(f.min_value(), Some(&ScalarValue::Float64(Some(-2.0))));
        assert_eq!(f.max_value(), Some(&ScalarValue::Float64(Some(1.5))));
        Ok(())
    }

    #[test]
    fn all_null_columns_have_no_bounds() -> Result<()> {
        let mut collector = FileStatsCollector::new(&schema());
        collector.update(&batch(vec![None, None], vec![None, None], vec![None, None]));
        let stats = collector.finish();
        let i = stats.column("i").expect("present in the test data");
        assert_eq!((i.null_count, &i.min, &i.max), (2, &None, &None));
        assert_eq!(
            i.distinct
                .as_ref()
                .expect("present in the test data")
                .estimate(),
            0
        );
        Ok(())
    }

    #[test]
    fn nan_drops_float_bounds() -> Result<()> {
        let mut collector = FileStatsCollector::new(&schema());
        collector.update(&batch(vec![Some(1)], vec![Some("x")], vec![Some(1.0)]));
        collector.update(&batch(vec![Some(1)], vec![Some("x")], vec![Some(f64::NAN)]));
        collector.update(&batch(vec![Some(1)], vec![Some("x")], vec![Some(7.0)]));
        let f = collector
            .finish()
            .columns
            .remove("f")
            .expect("present in the test data");
        assert_eq!((f.min, f.max), (None, None));
        Ok(())
    }
}
