//! Coordinator configurations that steer the distributed planner's choices, so that a test
//! can pin the path it means to exercise.

use datafusion::prelude::SessionConfig;
use shardfusion_scheduler::planner::PlannerOptions;

/// `config` with broadcast joins turned off (`shardfusion.broadcast_join_max_rows = 0`):
/// joins that are not co-located move rows between workers instead.
pub fn without_broadcasts(config: SessionConfig) -> SessionConfig {
    let mut options = PlannerOptions::default();
    options.broadcast_join_max_rows = 0;
    config.with_option_extension(options)
}

/// Whether `config` lets the planner broadcast join sides.
pub fn broadcasts(config: &SessionConfig) -> bool {
    config
        .options()
        .extensions
        .get::<PlannerOptions>()
        .is_none_or(|o| o.broadcast_join_max_rows > 0)
}
