//! The distribution hash and Citus-style shard ranges.
//!
//! A value is encoded canonically (integers of every width as little-endian `i64`, dates as
//! their day number widened to `i64`, text as its UTF-8 bytes), hashed with xxh3-64 and folded
//! to a signed 32-bit value. A new table's shard `i` of `n` covers the `i`-th even slice of the
//! `i32` range, the last one ending at `i32::MAX`, exactly as Citus lays out
//! `shardminvalue`/`shardmaxvalue`. Splitting a shard (`isolate_tenant_to_new_shard`) makes the
//! ranges uneven, so rows are routed by a table's [`ShardRanges`], never by its shard count.
//!
//! Never declare data split this way as DataFusion's `Partitioning::Hash`: DataFusion's own
//! hash function is different, and the optimizer would trust a partitioning that does not hold.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::common::ScalarValue;
use xxhash_rust::xxh3::xxh3_64;

/// Why a value could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("a NULL value is not allowed in distribution column \"{column}\"")]
    NullValue { column: String },
    #[error("type {data_type} cannot be used as a distribution column")]
    UnsupportedType { data_type: DataType },
    #[error("cannot split rows by shard: {reason}")]
    Split { reason: String },
    #[error("cannot convert {value} to the distribution column type {data_type}: {reason}")]
    BadValue {
        value: String,
        data_type: DataType,
        reason: String,
    },
}

/// Whether values of this type can be hashed as a distribution column.
pub fn is_distributable(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Date32
            | DataType::Date64
            | DataType::Boolean
            | DataType::Decimal128(_, _)
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

fn fold(hash: u64) -> i32 {
    ((hash >> 32) ^ hash) as u32 as i32
}

fn hash_i64(value: i64) -> i32 {
    fold(xxh3_64(&value.to_le_bytes()))
}

fn hash_bytes(value: &[u8]) -> i32 {
    fold(xxh3_64(value))
}

/// Hashes every value of `array`. A NULL anywhere is an error naming `column`.
pub fn hash_array(array: &ArrayRef, column: &str) -> Result<Vec<i32>, HashError> {
    if array.null_count() > 0 {
        return Err(HashError::NullValue {
            column: column.to_string(),
        });
    }
    hash_values(array)
}

/// The shard (of `ranges`) every value of `array` hashes to, as the rows of a table
/// distributed by a column of this type are placed; a NULL goes to shard 0 (a join key that
/// is NULL matches nothing, but an outer join must still see its row once).
pub fn shard_indexes(array: &ArrayRef, ranges: &ShardRanges) -> Result<Vec<i32>, HashError> {
    let hashes = hash_values(array)?;
    hashes
        .iter()
        .enumerate()
        .map(|(row, hash)| {
            if array.is_null(row) {
                Ok(0)
            } else {
                ranges.index_for_row(*hash).map(|i| i as i32)
            }
        })
        .collect()
}

/// Whether equal values of types `a` and `b` hash alike (see [`hash_array`]): both integers,
/// both dates, both text, both binary, both booleans, or decimals of one scale. Rows keyed by a
/// column of type `a` may be sent to the shards of a table distributed by a column of type `b`
/// only then.
pub fn hash_compatible(a: &DataType, b: &DataType) -> bool {
    fn family(t: &DataType) -> Option<(u8, i8)> {
        Some(match t {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => (0, 0),
            DataType::Date32 | DataType::Date64 => (1, 0),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (2, 0),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => (3, 0),
            DataType::Boolean => (4, 0),
            DataType::Decimal128(_, scale) => (5, *scale),
            _ => return None,
        })
    }
    matches!((family(a), family(b)), (Some(x), Some(y)) if x == y)
}

/// Hashes every value of `array`; NULL slots get an arbitrary hash.
fn hash_values(array: &ArrayRef) -> Result<Vec<i32>, HashError> {
    macro_rules! ints {
        ($t:ty) => {
            array
                .as_primitive::<$t>()
                .values()
                .iter()
                .map(|v| hash_i64(*v as i64))
                .collect()
        };
    }
    let hashes = match array.data_type() {
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::Date32 => ints!(Date32Type),
        // Date64 is milliseconds; hash the day number so it agrees with Date32.
        DataType::Date64 => array
            .as_primitive::<Date64Type>()
            .values()
            .iter()
            .map(|v| hash_i64(v.div_euclid(86_400_000)))
            .collect(),
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| hash_i64(i64::from(v.unwrap_or(false))))
            .collect(),
        DataType::Decimal128(_, _) => array
            .as_primitive::<Decimal128Type>()
            .values()
            .iter()
            .map(|v| hash_bytes(&v.to_le_bytes()))
            .collect(),
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| hash_bytes(v.unwrap_or_default().as_bytes()))
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|v| hash_bytes(v.unwrap_or_default().as_bytes()))
            .collect(),
        DataType::Utf8View => array
            .as_string_view()
            .iter()
            .map(|v| hash_bytes(v.unwrap_or_default().as_bytes()))
            .collect(),
        DataType::Binary => array
            .as_binary::<i32>()
            .iter()
            .map(|v| hash_bytes(v.unwrap_or_default()))
            .collect(),
        DataType::LargeBinary => array
            .as_binary::<i64>()
            .iter()
            .map(|v| hash_bytes(v.unwrap_or_default()))
            .collect(),
        DataType::BinaryView => array
            .as_binary_view()
            .iter()
            .map(|v| hash_bytes(v.unwrap_or_default()))
            .collect(),
        other => {
            return Err(HashError::UnsupportedType {
                data_type: other.clone(),
            });
        }
    };
    Ok(hashes)
}

/// Hashes one value after converting it to the distribution column's type, so that
/// `get_shard_id_for_distribution_column('t', '42')` agrees with the stored `42`.
pub fn hash_scalar(value: &ScalarValue, column_type: &DataType) -> Result<i32, HashError> {
    let bad = |reason: String| HashError::BadValue {
        value: value.to_string(),
        data_type: column_type.clone(),
        reason,
    };
    if value.is_null() {
        return Err(HashError::NullValue {
            column: "distribution column".to_string(),
        });
    }
    let array = value.to_array().map_err(|e| bad(e.to_string()))?;
    let array = if array.data_type() == column_type {
        array
    } else {
        let options = arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        arrow::compute::cast_with_options(&array, column_type, &options)
            .map_err(|e| bad(e.to_string()))?
    };
    let hashes = hash_array(&array, "distribution column")?;
    hashes
        .first()
        .copied()
        .ok_or_else(|| bad("empty value".to_string()))
}

/// The inclusive hash range `[min, max]` of shard `index` out of `shard_count` even ones.
pub fn shard_range(index: usize, shard_count: usize) -> (i32, i32) {
    let increment = range_increment(shard_count);
    let min = i64::from(i32::MIN) + index as i64 * increment;
    let max = if index + 1 == shard_count {
        i64::from(i32::MAX)
    } else {
        min + increment - 1
    };
    (min as i32, max as i32)
}

fn range_increment(shard_count: usize) -> i64 {
    (1i64 << 32) / shard_count.max(1) as i64
}

/// The contiguous hash ranges of a list of shards, in shard-index order: shard `i` holds the
/// hashes from `starts[i]` up to the next start (the last one up to `end`). A table's ranges
/// cover the whole `i32` range; the new shards of a split cover the range of the shard they
/// replace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShardRanges {
    starts: Vec<i32>,
    end: i32,
}

impl ShardRanges {
    /// `shard_count` even slices of the whole `i32` range, as a new table gets.
    pub fn even(shard_count: usize) -> Self {
        let count = shard_count.max(1);
        Self {
            starts: (0..count).map(|i| shard_range(i, count).0).collect(),
            end: i32::MAX,
        }
    }

    /// The ranges of shards listed in index order, which must be contiguous.
    pub fn from_ranges(ranges: &[(i32, i32)]) -> Result<Self, HashError> {
        let uneven = |reason: String| HashError::Split { reason };
        let Some(last) = ranges.last() else {
            return Err(uneven("a distributed table has no shards".to_string()));
        };
        for pair in ranges.windows(2) {
            let ((_, max), (min, _)) = (pair[0], pair[1]);
            if i64::from(max) + 1 != i64::from(min) {
                return Err(uneven(format!(
                    "shard hash ranges are not contiguous: one ends at {max}, the next starts \
                     at {min}"
                )));
            }
        }
        if ranges.iter().any(|(min, max)| min > max) {
            return Err(uneven(format!("a shard hash range is empty: {ranges:?}")));
        }
        let starts = ranges.iter().map(|(min, _)| *min).collect();
        Ok(Self {
            starts,
            end: last.1,
        })
    }

    /// The first hash of every shard, in index order.
    pub fn starts(&self) -> &[i32] {
        &self.starts
    }

    /// How many shards.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are no shards (never for a table's ranges).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Whether these are the even slices [`ShardRanges::even`] gives.
    pub fn is_even(&self) -> bool {
        *self == Self::even(self.len())
    }

    /// The inclusive range of shard `index`.
    pub fn range(&self, index: usize) -> (i32, i32) {
        let max = match self.starts.get(index + 1) {
            Some(next) => next - 1,
            None => self.end,
        };
        (self.starts[index], max)
    }

    /// The index of the shard whose range holds `hash`; `None` for a hash outside them all
    /// (never for a table's ranges, which cover every hash).
    pub fn index_of(&self, hash: i32) -> Option<usize> {
        if hash > self.end {
            return None;
        }
        self.starts
            .partition_point(|start| *start <= hash)
            .checked_sub(1)
    }

    /// [`ShardRanges::index_of`], or the error of a row that belongs in none of the shards.
    fn index_for_row(&self, hash: i32) -> Result<usize, HashError> {
        self.index_of(hash).ok_or_else(|| HashError::Split {
            reason: format!(
                "a row hashes to {hash}, outside the shards' ranges [{}, {}]",
                self.starts.first().copied().unwrap_or(i32::MIN),
                self.end
            ),
        })
    }
}

/// Splits `batch` into one batch per shard of `ranges` by the value of column `column_index`.
///
/// Returns `(shard index, rows)` pairs for the shards that received rows, in shard order.
pub fn split_by_shard(
    batch: &RecordBatch,
    column_index: usize,
    column_name: &str,
    ranges: &ShardRanges,
) -> Result<Vec<(usize, RecordBatch)>, HashError> {
    let hashes = hash_array(batch.column(column_index), column_name)?;
    let mut rows_per_shard: Vec<Vec<u32>> = vec![Vec::new(); ranges.len()];
    for (row, hash) in hashes.iter().enumerate() {
        rows_per_shard[ranges.index_for_row(*hash)?].push(row as u32);
    }
    let mut out = Vec::new();
    for (shard, rows) in rows_per_shard.into_iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let batch = if rows.len() == batch.num_rows() {
            batch.clone()
        } else {
            let indices = UInt32Array::from(rows);
            let columns = batch
                .columns()
                .iter()
                .map(|c| arrow::compute::take(c, &indices, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| HashError::Split {
                    reason: e.to_string(),
                })?;
            RecordBatch::try_new(batch.schema(), columns).map_err(|e| HashError::Split {
                reason: e.to_string(),
            })?
        };
        out.push((shard, batch));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use std::sync::Arc;

    #[test]
    fn ranges_cover_int32_without_gaps() {
        for n in [1usize, 2, 7, 32] {
            let mut expected_min = i64::from(i32::MIN);
            for i in 0..n {
                let (min, max) = shard_range(i, n);
                assert_eq!(i64::from(min), expected_min);
                assert!(max >= min);
                expected_min = i64::from(max) + 1;
            }
            assert_eq!(expected_min, i64::from(i32::MAX) + 1);
        }
    }

    #[test]
    fn citus_layout_for_four_shards() {
        assert_eq!(shard_range(0, 4), (i32::MIN, -1_073_741_825));
        assert_eq!(shard_range(3, 4), (1_073_741_824, i32::MAX));
    }

    #[test]
    fn every_hash_lands_in_its_range() {
        let values: ArrayRef = Arc::new(arrow::array::Int64Array::from_iter_values(0..10_000));
        let hashes = hash_array(&values, "k").expect("hash");
        for n in [1usize, 7, 32] {
            let ranges = ShardRanges::even(n);
            assert!(ranges.is_even());
            for h in &hashes {
                let index = ranges.index_of(*h).expect("every hash has a shard");
                let (min, max) = shard_range(index, n);
                assert!(min <= *h && *h <= max);
                assert_eq!(ranges.range(index), (min, max));
            }
        }
    }

    #[test]
    fn uneven_ranges_route_by_their_bounds() {
        // Shard 2 of 4 split around hash 7: [.., 6], [7, 7], [8, ..].
        let (lo, hi) = shard_range(2, 4);
        let mut list: Vec<(i32, i32)> = vec![shard_range(0, 4), shard_range(1, 4)];
        list.extend([(lo, 6), (7, 7), (8, hi), shard_range(3, 4)]);
        let ranges = ShardRanges::from_ranges(&list).expect("contiguous");
        assert!(!ranges.is_even());
        assert_eq!(ranges.len(), 6);
        for (index, (min, max)) in list.iter().enumerate() {
            assert_eq!(ranges.index_of(*min), Some(index));
            assert_eq!(ranges.index_of(*max), Some(index));
            assert_eq!(ranges.range(index), (*min, *max));
        }
        // A split's own new shards cover only the shard they replace.
        let part = ShardRanges::from_ranges(&list[2..5]).expect("contiguous");
        assert_eq!(part.index_of(7), Some(1));
        assert_eq!(part.range(2), (8, hi));
        // A row outside them is an error, never put in the nearest shard.
        assert_eq!(part.index_of(lo - 1), None);
        assert_eq!(part.index_of(hi + 1), None);
        let keys: ArrayRef = Arc::new(arrow::array::Int64Array::from_iter_values(0..1000));
        assert!(matches!(
            shard_indexes(&keys, &part),
            Err(HashError::Split { .. })
        ));
        let gap = ShardRanges::from_ranges(&[(i32::MIN, 0), (2, i32::MAX)]);
        assert!(matches!(gap, Err(HashError::Split { .. })));
    }

    #[test]
    fn integer_widths_hash_alike() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![1, 42, -7]));
        let b: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1, 42, -7]));
        assert_eq!(hash_array(&a, "k").ok(), hash_array(&b, "k").ok());
        let s = hash_scalar(&ScalarValue::Utf8(Some("42".into())), &DataType::Int32).ok();
        assert_eq!(s, hash_array(&a, "k").ok().map(|h| h[1]));
    }

    #[test]
    fn nulls_are_rejected() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None]));
        assert!(matches!(
            hash_array(&a, "k"),
            Err(HashError::NullValue { .. })
        ));
    }
}
