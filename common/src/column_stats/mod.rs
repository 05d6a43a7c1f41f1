//! Per-file column statistics: what a shard file's writer records about each column, and what
//! the coordinator makes of it.
//!
//! Layout:
//! - [`hll`]: the [`HyperLogLog`] distinct-count sketch.
//! - [`bounds`]: min/max bounds, and how long strings and binaries are truncated so that a
//!   lower bound stays `<=` and an upper bound `>=` every value.
//! - [`collector`]: [`FileStatsCollector`], fed batch by batch while a file is written or read.
//! - [`encoding`]: [`FileStats`] to and from the wire ([`crate::wire::ColumnStatsMessage`]);
//!   bounds travel as datafusion-proto `ScalarValue` bytes, so they keep their type.
//! - [`scan_statistics`]: DataFusion `Statistics` of a set of files.
//! - [`pruning`]: DataFusion `PruningStatistics` over a set of files, to skip files by min/max.
//!
//! Invariant every user relies on: a statistic that is present is *true* of the file (bounds
//! may be wider than the data, never narrower); anything unknown is absent, and absent always
//! means "could be anything".

pub mod bounds;
pub mod collector;
pub mod encoding;
pub mod hll;
pub mod pruning;
pub mod scan_statistics;

use std::collections::BTreeMap;

use datafusion::common::ScalarValue;

pub use bounds::Bound;
pub use collector::FileStatsCollector;
pub use hll::HyperLogLog;

/// What is known about the columns of one shard file. The row count is kept next to the file
/// itself (it is known for every file, with or without these statistics).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileStats {
    /// By column name. A column missing here (added to the table after the file was written,
    /// or recorded before statistics existed) is unknown.
    pub columns: BTreeMap<String, ColumnStats>,
}

impl FileStats {
    pub fn column(&self, name: &str) -> Option<&ColumnStats> {
        self.columns.get(name)
    }
}

/// What is known about one column of one file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnStats {
    /// NULLs in the column (always exact).
    pub null_count: u64,
    /// `<=` every non-NULL value of the column; `None` when unknown, or when the column has
    /// no non-NULL value, or its type has no meaningful order.
    pub min: Option<Bound>,
    /// `>=` every non-NULL value of the column; `None` as for `min`.
    pub max: Option<Bound>,
    /// Sketch of the distinct non-NULL values; `None` for types that are not hashed.
    pub distinct: Option<HyperLogLog>,
}

impl ColumnStats {
    /// The lower bound's value, if any.
    pub fn min_value(&self) -> Option<&ScalarValue> {
        self.min.as_ref().map(|b| &b.value)
    }

    /// The upper bound's value, if any.
    pub fn max_value(&self) -> Option<&ScalarValue> {
        self.max.as_ref().map(|b| &b.value)
    }
}
