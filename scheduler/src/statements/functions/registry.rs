//! [`CitusFunction`] and the registry of every Citus function the coordinator runs. A function
//! is one file in this directory exporting a `CitusFunction`; adding one means adding it to
//! [`FUNCTIONS`].

use futures::future::BoxFuture;

use super::call::FunctionCall;
use super::{
    alter_distributed_table, citus_activate_node, citus_add_node, citus_cleanup_orphaned_resources,
    citus_disable_node, citus_drain_node, citus_get_active_worker_nodes,
    citus_move_shard_placement, citus_rebalance_start, citus_rebalance_status,
    citus_rebalance_stop, citus_rebalance_wait, citus_remove_node, citus_set_node_property,
    citus_version, create_distributed_table, create_reference_table, get_rebalance_progress,
    get_rebalance_table_shards_plan, get_shard_id_for_distribution_column,
    isolate_tenant_to_new_shard, rebalance_table_shards, replicate_reference_tables,
    shardfusion_compact_table, undistribute_table,
};
use crate::coordinator::{Coordinator, StatementOutput};
use crate::error::Result;

/// How a function runs: the coordinator and the call, to the statement's result.
pub type RunFunction =
    for<'a> fn(&'a Coordinator, FunctionCall) -> BoxFuture<'a, Result<StatementOutput>>;

/// A Citus function: the names it answers to (its `master_` alias too) and how it runs.
pub struct CitusFunction {
    pub names: &'static [&'static str],
    /// Whether only a superuser may call it: everything that changes the cluster. Functions
    /// that only read metadata are for every role.
    pub superuser_only: bool,
    /// For a function that only reads and returns rows: those rows, so that it also works
    /// in `FROM` (`SELECT * FROM get_rebalance_progress()`), with positional arguments.
    pub rows: Option<RowsFunction>,
    pub run: RunFunction,
}

/// The rows of a read-only set-returning function, from the cluster and the call.
pub type RowsFunction =
    fn(&std::sync::Arc<crate::cluster::Cluster>, &FunctionCall) -> Result<StatementOutput>;

impl std::fmt::Debug for CitusFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CitusFunction")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// Every function, in the order `\df citus_*` would list them.
pub const FUNCTIONS: &[&CitusFunction] = &[
    &alter_distributed_table::FUNCTION,
    &citus_activate_node::FUNCTION,
    &citus_add_node::FUNCTION,
    &citus_cleanup_orphaned_resources::FUNCTION,
    &citus_disable_node::FUNCTION,
    &citus_drain_node::FUNCTION,
    &citus_get_active_worker_nodes::FUNCTION,
    &citus_move_shard_placement::FUNCTION,
    &citus_rebalance_start::FUNCTION,
    &citus_rebalance_status::FUNCTION,
    &citus_rebalance_stop::FUNCTION,
    &citus_rebalance_wait::FUNCTION,
    &citus_remove_node::FUNCTION,
    &citus_set_node_property::FUNCTION,
    &citus_version::FUNCTION,
    &create_distributed_table::FUNCTION,
    &create_reference_table::FUNCTION,
    &undistribute_table::FUNCTION,
    &get_rebalance_progress::FUNCTION,
    &get_rebalance_table_shards_plan::FUNCTION,
    &get_shard_id_for_distribution_column::FUNCTION,
    &isolate_tenant_to_new_shard::FUNCTION,
    &rebalance_table_shards::FUNCTION,
    &replicate_reference_tables::FUNCTION,
    &shardfusion_compact_table::FUNCTION,
];

/// The function called `name` (lower case), if there is one.
pub fn lookup(name: &str) -> Option<&'static CitusFunction> {
    FUNCTIONS.iter().copied().find(|f| f.names.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_belongs_to_one_function() {
        let mut names: Vec<_> = FUNCTIONS.iter().flat_map(|f| f.names.iter()).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a name is registered twice");
        assert!(lookup("citus_add_node").is_some());
        assert!(lookup("master_add_node").is_some());
        assert!(lookup("now").is_none());
    }
}
