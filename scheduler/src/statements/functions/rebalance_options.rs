//! The arguments the rebalancer's functions share (`relation`, `threshold`,
//! `max_shard_moves`, `drain_only`, `rebalance_strategy`), read into a
//! [`PlanOptions`], and the plan they lead to.

use shardfusion_catalog::CatalogSnapshot;

use super::call::{FunctionCall, relation_name};
use crate::cluster::rebalance_plan::{PlanOptions, PlannedMove, Strategy, plan_rebalance};
use crate::error::{Result, SchedulerError};

/// Reads the options at Citus's positions for `rebalance_table_shards` and
/// `get_rebalance_table_shards_plan`: `(relation, threshold, max_shard_moves,
/// excluded_shard_list, shard_transfer_mode | drain_only, ...)`; by name wherever given.
pub(super) fn plan_options(call: &FunctionCall) -> Result<PlanOptions> {
    let strategy = strategy(call, usize::MAX)?;
    let max_moves = match call.integer(2, "max_shard_moves")? {
        None => None,
        Some(n) if n >= 0 => Some(n as usize),
        Some(n) => {
            return Err(SchedulerError::invalid(format!(
                "max_shard_moves must not be negative, got {n}"
            )));
        }
    };
    let threshold = match call.arg(1, "threshold") {
        None => 0.0,
        Some(value) => value
            .to_string()
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|t| (0.0..1.0).contains(t))
            .ok_or_else(|| {
                SchedulerError::invalid(format!("threshold must be in [0, 1), got {value}"))
            })?,
    };
    Ok(PlanOptions {
        strategy,
        relation: call.text(0, "relation")?.map(|r| relation_name(&r)),
        drain_only: call.boolean(usize::MAX, "drain_only")?.unwrap_or(false),
        threshold,
        max_moves,
        drain_group: None,
    })
}

/// The `rebalance_strategy` argument (at `position`, or by name): `by_shard_count` unless
/// given.
pub(super) fn strategy(call: &FunctionCall, position: usize) -> Result<Strategy> {
    match call.text(position, "rebalance_strategy")? {
        None => Ok(Strategy::default()),
        Some(name) => Strategy::named(&name).ok_or_else(|| {
            SchedulerError::invalid(format!(
                "unknown rebalance_strategy \"{name}\": use by_shard_count or by_disk_size"
            ))
        }),
    }
}

/// The moves `options` plan on `snapshot`.
pub(super) fn planned(
    snapshot: &CatalogSnapshot,
    options: &PlanOptions,
) -> Result<Vec<PlannedMove>> {
    plan_rebalance(snapshot, options).map_err(SchedulerError::invalid)
}

/// How many shard groups a background rebalance moves at once: the named argument
/// `max_shard_moves` (1 to 64), else one at a time.
pub(super) fn parallel_moves(call: &FunctionCall) -> Result<usize> {
    Ok(call
        .integer(usize::MAX, "max_shard_moves")?
        .map_or(1, |n| n.clamp(1, 64) as usize))
}
