//! Citus's functions, called as `SELECT fn(...)`, one file each, found through
//! [`registry`]: `create_distributed_table`, `create_reference_table`, `citus_add_node` and
//! `citus_remove_node` (and their `master_` names), `get_shard_id_for_distribution_column`,
//! `citus_get_active_worker_nodes`, `citus_version` and `citus_cleanup_orphaned_resources`,
//! and ShardFusion's own `shardfusion_compact_table`.
//!
//! [`call`] recognises a call and reads its arguments, positionally or by name as in Citus's
//! signatures (`shard_count => 4`).

pub mod call;
pub mod registry;
mod results;

mod citus_add_node;
mod citus_cleanup_orphaned_resources;
mod citus_get_active_worker_nodes;
mod citus_remove_node;
mod citus_set_node_property;
mod citus_version;
mod create_distributed_table;
mod create_reference_table;
mod get_shard_id_for_distribution_column;
mod shardfusion_compact_table;

pub use call::{FunctionCall, function_call};

use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

/// Runs a recognised call.
pub async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    (call.function.run)(coordinator, call).await
}
