//! The distributed planner's settings, as a DataFusion configuration extension under the
//! `shardfusion` prefix, read from the coordinator's `SessionConfig` (an embedded cluster's
//! or a test's). A client's `SET shardfusion.<name>` does not last yet: every statement
//! builds a fresh session from the coordinator's configuration.

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;

use super::broadcast::MAX_BROADCAST_ROWS;

extensions_options! {
    /// Settings of the distributed planner.
    pub struct PlannerOptions {
        /// The largest estimated row count a join side may have to be broadcast to the
        /// workers of the other side; `0` never broadcasts (joins that are not co-located
        /// then move rows between workers instead, as Citus's repartition joins do).
        pub broadcast_join_max_rows: usize, default = MAX_BROADCAST_ROWS
    }
}

impl ConfigExtension for PlannerOptions {
    const PREFIX: &'static str = "shardfusion";
}
