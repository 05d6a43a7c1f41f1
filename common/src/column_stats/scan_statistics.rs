//! DataFusion [`Statistics`] of reading a set of shard files: what `ShardScanExec` reports
//! for one shard (partition) or for the whole scan.
//!
//! - `num_rows`: the files' row counts (always known), `Exact` only when the scan reads every
//!   row (no predicate, no limit).
//! - `total_byte_size`: the files' sizes, scaled to the projected columns, `Inexact` (Parquet
//!   bytes are not Arrow bytes).
//! - per projected column, when every file has statistics for it: `null_count` summed,
//!   `min_value`/`max_value` merged over the files holding non-NULL values, `distinct_count`
//!   the estimate of the merged sketches (always `Inexact`). Bounds are `Exact` only when the
//!   scan reads every row and every file's bound is an exact value of the column; a truncated
//!   string or a float bound is `Inexact`. A column some file lacks statistics for is unknown.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};

use super::{Bound, ColumnStats, HyperLogLog};
use crate::shard_scan::FileRef;

/// The statistics of reading `files` of a table with columns `schema`, output columns
/// `projection` (`None` = all). `reads_all_rows` is false when a predicate or limit may skip
/// rows; `limit` caps the row count.
pub fn files_statistics(
    schema: &Schema,
    projection: Option<&[usize]>,
    files: &[&FileRef],
    reads_all_rows: bool,
    limit: Option<usize>,
) -> Statistics {
    let columns: Vec<usize> = match projection {
        Some(p) => p.to_vec(),
        None => (0..schema.fields().len()).collect(),
    };
    let rows: usize = files.iter().map(|f| f.row_count as usize).sum();
    let exact = reads_all_rows && limit.is_none();
    let num_rows = match limit {
        Some(limit) => Precision::Inexact(rows.min(limit)),
        None if exact => Precision::Exact(rows),
        None => Precision::Inexact(rows),
    };
    let bytes: u64 = files.iter().map(|f| f.byte_size).sum();
    let all_columns = schema.fields().len().max(1) as u64;
    let total_byte_size = Precision::Inexact((bytes * columns.len() as u64 / all_columns) as usize);
    let column_statistics = columns
        .iter()
        .map(|&index| match schema.fields().get(index) {
            Some(field) => column_statistics(field.name(), field.data_type(), files, exact),
            None => ColumnStatistics::new_unknown(),
        })
        .collect();
    Statistics {
        num_rows,
        total_byte_size,
        column_statistics,
    }
}

fn column_statistics(
    name: &str,
    data_type: &DataType,
    files: &[&FileRef],
    exact: bool,
) -> ColumnStatistics {
    let mut per_file: Vec<(&FileRef, &ColumnStats)> = Vec::with_capacity(files.len());
    for file in files {
        match file.stats.as_ref().and_then(|s| s.column(name)) {
            Some(column) => per_file.push((file, column)),
            None => return ColumnStatistics::new_unknown(),
        }
    }
    let precise = |value: usize| {
        if exact {
            Precision::Exact(value)
        } else {
            Precision::Inexact(value)
        }
    };
    let nulls: u64 = per_file.iter().map(|(_, c)| c.null_count).sum();
    // Files holding only NULLs have no bounds and constrain nothing.
    let valued: Vec<&ColumnStats> = per_file
        .iter()
        .filter(|(f, c)| c.null_count < f.row_count)
        .map(|(_, c)| *c)
        .collect();
    let min = merged_bound(&valued, |c| c.min.as_ref(), data_type, exact, true);
    let max = merged_bound(&valued, |c| c.max.as_ref(), data_type, exact, false);
    let distinct = merged_sketch(per_file.iter().map(|(_, c)| *c)).map_or(Precision::Absent, |s| {
        Precision::Inexact(s.estimate() as usize)
    });
    ColumnStatistics::new_unknown()
        .with_null_count(precise(nulls as usize))
        .with_min_value(min)
        .with_max_value(max)
        .with_distinct_count(distinct)
}

/// The smallest lower bound (`lowest`) or largest upper bound of `columns`; `Absent` if any
/// is missing, of another type than the column, or the values do not compare.
fn merged_bound<'a>(
    columns: &[&'a ColumnStats],
    bound_of: impl Fn(&'a ColumnStats) -> Option<&'a Bound>,
    data_type: &DataType,
    exact: bool,
    lowest: bool,
) -> Precision<ScalarValue> {
    let mut merged: Option<&Bound> = None;
    let mut all_exact = exact;
    for column in columns {
        let Some(bound) = bound_of(column) else {
            return Precision::Absent;
        };
        if &bound.value.data_type() != data_type {
            return Precision::Absent;
        }
        all_exact &= bound.exact;
        merged = match merged {
            None => Some(bound),
            Some(current) => {
                let Some(ordering) = bound.value.partial_cmp(&current.value) else {
                    return Precision::Absent;
                };
                let replaces = if lowest {
                    ordering.is_lt()
                } else {
                    ordering.is_gt()
                };
                Some(if replaces { bound } else { current })
            }
        };
    }
    match merged {
        Some(bound) if all_exact => Precision::Exact(bound.value.clone()),
        Some(bound) => Precision::Inexact(bound.value.clone()),
        None => Precision::Absent,
    }
}

/// The union of the sketches of `columns`; `None` if any has none.
pub fn merged_sketch<'a>(columns: impl Iterator<Item = &'a ColumnStats>) -> Option<HyperLogLog> {
    let mut merged = HyperLogLog::new();
    for column in columns {
        merged.merge(column.distinct.as_ref()?);
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::Field;

    use super::*;
    use crate::column_stats::FileStats;

    fn file(rows: u64, column: Option<ColumnStats>) -> FileRef {
        FileRef {
            path: "f".into(),
            byte_size: 100,
            row_count: rows,
            stats: column.map(|c| {
                let mut stats = FileStats::default();
                stats.columns.insert("x".into(), c);
                Arc::new(stats)
            }),
        }
    }

    fn ints(nulls: u64, min: i64, max: i64, values: std::ops::Range<i64>) -> ColumnStats {
        let mut sketch = HyperLogLog::new();
        for v in values {
            sketch.add_bytes(&v.to_le_bytes());
        }
        ColumnStats {
            null_count: nulls,
            min: Bound::lower(ScalarValue::Int64(Some(min))),
            max: Bound::upper(ScalarValue::Int64(Some(max))),
            distinct: Some(sketch),
        }
    }

    fn schema() -> Schema {
        Schema::new(vec![Field::new("x", DataType::Int64, true)])
    }

    #[test]
    fn merges_files_exactly_when_every_row_is_read() {
        let a = file(10, Some(ints(1, 5, 20, 0..9)));
        let b = file(5, Some(ints(0, -3, 7, 5..10)));
        let all_nulls = file(
            4,
            Some(ColumnStats {
                null_count: 4,
                distinct: Some(HyperLogLog::new()),
                ..Default::default()
            }),
        );
        let stats = files_statistics(&schema(), None, &[&a, &b, &all_nulls], true, None);
        assert_eq!(stats.num_rows, Precision::Exact(19));
        let x = &stats.column_statistics[0];
        assert_eq!(x.null_count, Precision::Exact(5));
        assert_eq!(x.min_value, Precision::Exact(ScalarValue::Int64(Some(-3))));
        assert_eq!(x.max_value, Precision::Exact(ScalarValue::Int64(Some(20))));
        assert_eq!(x.distinct_count, Precision::Inexact(10));
    }

    #[test]
    fn predicates_limits_and_unknown_files_weaken_the_answer() {
        let a = file(10, Some(ints(1, 5, 20, 0..9)));
        let unknown = file(5, None);
        let filtered = files_statistics(&schema(), None, &[&a], false, None);
        assert_eq!(filtered.num_rows, Precision::Inexact(10));
        assert_eq!(
            filtered.column_statistics[0].min_value,
            Precision::Inexact(ScalarValue::Int64(Some(5)))
        );
        let limited = files_statistics(&schema(), None, &[&a], true, Some(3));
        assert_eq!(limited.num_rows, Precision::Inexact(3));
        let mixed = files_statistics(&schema(), None, &[&a, &unknown], true, None);
        assert_eq!(mixed.num_rows, Precision::Exact(15));
        assert_eq!(mixed.column_statistics[0], ColumnStatistics::new_unknown());
    }

    #[test]
    fn scans_report_per_shard_and_whole_statistics_and_keep_them_when_cut() {
        use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs};

        use crate::ids::{NodeId, ShardId};
        use crate::shard_scan::{ShardFiles, ShardScanExec};

        let shard = |id: i64, files: Vec<FileRef>| ShardFiles {
            shard_id: ShardId(id),
            node_id: NodeId(1),
            files,
        };
        let shards = vec![
            shard(1, vec![file(10, Some(ints(1, 5, 20, 0..9)))]),
            shard(2, vec![file(5, Some(ints(0, -3, 7, 5..10)))]),
        ];
        let scan = ShardScanExec::try_new("t", Arc::new(schema()), None, None, None, shards)
            .expect("present in the test data");
        let at = |scan: &ShardScanExec, partition| {
            let args = StatisticsArgs::new().with_partition(partition);
            scan.statistics_from_inputs(&[], &args)
                .expect("present in the test data")
        };
        let whole = at(&scan, None);
        assert_eq!(whole.num_rows, Precision::Exact(15));
        assert_eq!(
            whole.column_statistics[0].min_value,
            Precision::Exact(ScalarValue::Int64(Some(-3)))
        );
        let second = at(&scan, Some(1));
        assert_eq!(second.num_rows, Precision::Exact(5));
        assert_eq!(
            second.column_statistics[0].max_value,
            Precision::Exact(ScalarValue::Int64(Some(7)))
        );
        // A scan cut for one worker keeps its files' statistics.
        let cut = scan
            .with_shards(vec![scan.shards()[0].clone()])
            .expect("present in the test data");
        assert_eq!(at(&cut, None).num_rows, Precision::Exact(10));
        assert_eq!(
            at(&cut, Some(0)).column_statistics[0].max_value,
            Precision::Exact(ScalarValue::Int64(Some(20)))
        );
    }

    #[test]
    fn fragments_do_not_carry_statistics() {
        use datafusion::execution::TaskContext;
        use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs};

        use crate::codec::{decode_plan, encode_plan};
        use crate::ids::{NodeId, ShardId};
        use crate::shard_scan::{ShardFiles, ShardScanExec};

        let shards = vec![ShardFiles {
            shard_id: ShardId(1),
            node_id: NodeId(1),
            files: vec![file(10, Some(ints(1, 5, 20, 0..9)))],
        }];
        let scan = ShardScanExec::try_new("t", Arc::new(schema()), None, None, None, shards)
            .expect("scan");
        let bytes = encode_plan(Arc::new(scan)).expect("encode");
        let decoded = decode_plan(&bytes, &TaskContext::default()).expect("decode");
        let decoded = decoded
            .downcast_ref::<ShardScanExec>()
            .expect("a ShardScanExec");
        assert!(decoded.shards()[0].files[0].stats.is_none());
        let stats = decoded
            .statistics_from_inputs(&[], &StatisticsArgs::new())
            .expect("statistics");
        // Row counts travel with the files; column statistics stay on the coordinator.
        assert_eq!(stats.num_rows, Precision::Exact(10));
        assert_eq!(stats.column_statistics[0], ColumnStatistics::new_unknown());
    }

    #[test]
    fn bounds_of_another_type_are_ignored() {
        let mut column = ints(0, 1, 2, 1..3);
        column.min = Bound::lower(ScalarValue::Int32(Some(1)));
        let a = file(2, Some(column));
        let stats = files_statistics(&schema(), None, &[&a], true, None);
        assert_eq!(stats.column_statistics[0].min_value, Precision::Absent);
        assert_eq!(
            stats.column_statistics[0].max_value,
            Precision::Exact(ScalarValue::Int64(Some(2)))
        );
    }
}
