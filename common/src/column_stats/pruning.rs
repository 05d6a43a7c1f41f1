//! Skipping whole shard files by their min/max: [`FilesPruningStatistics`] shows the files'
//! statistics to DataFusion's `PruningPredicate`, and [`prune_files`] drops every file the
//! predicate proves holds no matching row.
//!
//! Conservative by construction: a file without statistics for a column, a bound of another
//! type than the column (written before a type change), or a column missing from the file all
//! show as NULL (unknown) to the predicate, which then keeps the file. NULL counts and row
//! counts are given too, so `x IS NULL` / `x IS NOT NULL` prune, and a file holding only
//! NULLs is skipped by `x = 5`. Casts and coercions in the filter are the predicate's to
//! handle: it rewrites only those it can prove monotonic and keeps files otherwise.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::{Column, ScalarValue};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::{PruningPredicateBuilder, PruningStatistics};

use super::ColumnStats;
use crate::shard_scan::{FileRef, ShardFiles};

/// The statistics of a list of files (the containers), for one table schema.
pub struct FilesPruningStatistics<'a> {
    schema: &'a Schema,
    files: Vec<&'a FileRef>,
}

impl<'a> FilesPruningStatistics<'a> {
    pub fn new(schema: &'a Schema, files: Vec<&'a FileRef>) -> Self {
        Self { schema, files }
    }

    fn column_stats(&self, file: &'a FileRef, name: &str) -> Option<&'a ColumnStats> {
        file.stats.as_ref()?.column(name)
    }

    /// One bound per file; NULL where unknown. `None` if no file has one.
    fn bounds(
        &self,
        column: &Column,
        bound: impl Fn(&'a ColumnStats) -> Option<&'a ScalarValue>,
    ) -> Option<ArrayRef> {
        let field = self.schema.field_with_name(&column.name).ok()?;
        let unknown = ScalarValue::try_from(field.data_type()).ok()?;
        let mut known = false;
        let values = self.files.iter().map(|file| {
            match self
                .column_stats(file, &column.name)
                .and_then(&bound)
                .filter(|v| &v.data_type() == field.data_type())
            {
                Some(value) => {
                    known = true;
                    value.clone()
                }
                None => unknown.clone(),
            }
        });
        let values: Vec<ScalarValue> = values.collect();
        if !known {
            return None;
        }
        ScalarValue::iter_to_array(values).ok()
    }
}

impl PruningStatistics for FilesPruningStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, ColumnStats::min_value)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, ColumnStats::max_value)
    }

    fn num_containers(&self) -> usize {
        self.files.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let counts: UInt64Array = self
            .files
            .iter()
            .map(|f| self.column_stats(f, &column.name).map(|c| c.null_count))
            .collect();
        Some(Arc::new(counts))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let counts: UInt64Array = self.files.iter().map(|f| Some(f.row_count)).collect();
        Some(Arc::new(counts))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// Removes from `shards` every file `predicate` (over `schema`) proves has no matching row;
/// returns how many were removed. A shard may be left with no file: it then reads nothing.
/// When the predicate cannot be used for pruning, nothing is removed.
pub fn prune_files(
    predicate: &Arc<dyn PhysicalExpr>,
    schema: &SchemaRef,
    shards: &mut [ShardFiles],
) -> usize {
    let Some(pruning) = PruningPredicateBuilder::new()
        .with_file_schema(Arc::clone(schema))
        .build(Arc::clone(predicate))
    else {
        // Trivially true, or nothing it can use: every file may match.
        return 0;
    };
    let keep = {
        let files: Vec<&FileRef> = shards.iter().flat_map(|s| &s.files).collect();
        if files.iter().all(|f| f.stats.is_none()) {
            return 0;
        }
        let statistics = FilesPruningStatistics::new(schema, files);
        match pruning.prune(&statistics) {
            Ok(keep) => keep,
            Err(e) => {
                log::debug!("file pruning skipped: {e}");
                return 0;
            }
        }
    };
    let mut keep = keep.into_iter();
    let mut removed = 0;
    for shard in shards.iter_mut() {
        shard.files.retain(|_| {
            let kept = keep.next().unwrap_or(true);
            removed += usize::from(!kept);
            kept
        });
    }
    removed
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, col, lit};

    use super::*;
    use crate::column_stats::{Bound, FileStats};
    use crate::ids::{NodeId, ShardId};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    fn file(rows: u64, d: Option<(i32, i32, u64)>, s: Option<(&str, &str)>) -> FileRef {
        let mut stats = FileStats::default();
        if let Some((min, max, nulls)) = d {
            stats.columns.insert(
                "d".into(),
                ColumnStats {
                    null_count: nulls,
                    min: Bound::lower(ScalarValue::Date32(Some(min))),
                    max: Bound::upper(ScalarValue::Date32(Some(max))),
                    distinct: None,
                },
            );
        }
        if let Some((min, max)) = s {
            stats.columns.insert(
                "s".into(),
                ColumnStats {
                    null_count: 0,
                    min: Bound::lower(ScalarValue::from(min)),
                    max: Bound::upper(ScalarValue::from(max)),
                    distinct: None,
                },
            );
        }
        FileRef {
            path: format!("f{rows}"),
            byte_size: 1,
            row_count: rows,
            stats: Some(Arc::new(stats)),
        }
    }

    fn shards(files: Vec<FileRef>) -> Vec<ShardFiles> {
        vec![ShardFiles {
            shard_id: ShardId(1),
            node_id: NodeId(1),
            files,
        }]
    }

    fn predicate(column: &str, op: Operator, value: ScalarValue) -> Arc<dyn PhysicalExpr> {
        let schema = schema();
        Arc::new(BinaryExpr::new(
            col(column, &schema).expect("present in the test data"),
            op,
            lit(value),
        ))
    }

    fn kept(predicate: Arc<dyn PhysicalExpr>, files: Vec<FileRef>) -> Vec<String> {
        let mut shards = shards(files);
        prune_files(&predicate, &schema(), &mut shards);
        shards[0].files.iter().map(|f| f.path.clone()).collect()
    }

    #[test]
    fn prunes_files_whose_range_excludes_the_value() {
        let files = vec![
            file(1, Some((0, 9, 0)), None),
            file(2, Some((10, 19, 0)), None),
            file(3, None, None),
            file(4, Some((0, 0, 4)), None),
        ];
        let eq = predicate("d", Operator::Eq, ScalarValue::Date32(Some(12)));
        // f3 has no statistics for d and stays; f4 holds only NULLs.
        assert_eq!(kept(eq, files.clone()), ["f2", "f3"]);
        let gt = predicate("d", Operator::Gt, ScalarValue::Date32(Some(9)));
        assert_eq!(kept(gt, files), ["f2", "f3"]);
    }

    #[test]
    fn truncated_string_maxima_still_bound_the_values() {
        let long = format!("{}zz", "k".repeat(70));
        let stats =
            Bound::upper(ScalarValue::from(long.as_str())).expect("present in the test data");
        let ScalarValue::Utf8(Some(max)) = stats.value else {
            panic!("string bound expected");
        };
        let files = vec![
            file(1, None, Some(("a", &max))),
            file(2, None, Some(("m", "n"))),
        ];
        let eq = predicate("s", Operator::Eq, ScalarValue::from(long.as_str()));
        assert_eq!(kept(eq, files), ["f1"]);
    }
}
