//! [`StageOutput`]: how a producer stage routes its rows to the stage that reads them.

use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::Partitioning;
use shardfusion_common::hashing::ShardRanges;

/// How a producer stage routes its rows to the stage that reads them.
pub(super) enum StageOutput {
    /// DataFusion's hash of the keys, into a shuffle's partitions.
    Hash(Partitioning),
    /// By the shard (of `ranges`) `key` hashes to, keeping only the `wanted` shards.
    IntoShards {
        key: Arc<dyn PhysicalExpr>,
        ranges: ShardRanges,
        wanted: Option<Vec<usize>>,
    },
}
