//! Citus's functions, called as `SELECT fn(...)`, one file each, found through
//! [`registry`]: tables (`create_distributed_table`, `create_reference_table`,
//! `alter_distributed_table`, `isolate_tenant_to_new_shard`,
//! `get_shard_id_for_distribution_column`), nodes (`citus_add_node`, `citus_remove_node`,
//! `citus_disable_node`, `citus_activate_node`, `citus_set_node_property`,
//! `citus_drain_node`, `citus_get_active_worker_nodes`, and their `master_` names), shard
//! moves and rebalancing (`citus_move_shard_placement`, `rebalance_table_shards`,
//! `get_rebalance_table_shards_plan`, `citus_rebalance_start`/`_status`/`_wait`/`_stop`,
//! `get_rebalance_progress`, `replicate_reference_tables`), `citus_version`,
//! `citus_cleanup_orphaned_resources`, and ShardFusion's own `shardfusion_compact_table`.
//!
//! [`call`] recognises a call and reads its arguments, positionally or by name as in Citus's
//! signatures (`shard_count => 4`).

pub mod call;
pub mod registry;
mod results;

mod rebalance_options;

mod alter_distributed_table;
mod citus_activate_node;
mod citus_add_node;
mod citus_cleanup_orphaned_resources;
mod citus_disable_node;
mod citus_drain_node;
mod citus_get_active_worker_nodes;
mod citus_move_shard_placement;
mod citus_rebalance_start;
mod citus_rebalance_status;
mod citus_rebalance_stop;
mod citus_rebalance_wait;
mod citus_remove_node;
mod citus_set_node_property;
mod citus_version;
mod create_distributed_table;
mod create_reference_table;
mod get_rebalance_progress;
mod get_rebalance_table_shards_plan;
mod get_shard_id_for_distribution_column;
mod isolate_tenant_to_new_shard;
mod rebalance_table_shards;
mod replicate_reference_tables;
mod shardfusion_compact_table;
mod undistribute_table;

pub use call::{FunctionCall, function_call};

use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

/// Runs a recognised call.
pub async fn run(coordinator: &Coordinator, call: FunctionCall) -> Result<StatementOutput> {
    (call.function.run)(coordinator, call).await
}
