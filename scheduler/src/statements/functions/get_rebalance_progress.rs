//! `get_rebalance_progress()`: the moves (and reference-table copies) of the current or last
//! rebalance and any running now, as Citus lists them: `sessionid, table_name, shardid,
//! shard_size, sourcename, sourceport, targetname, targetport, progress` (0 waiting, 1
//! moving, 2 done), `source_shard_size, target_shard_size, operation_type`, plus
//! ShardFusion's `bytes_copied` and `status`.

use std::sync::Arc;

use datafusion::arrow::array::{Int32Array, Int64Array, StringArray};
use futures::FutureExt;

use super::call::FunctionCall;
use super::registry::CitusFunction;
use super::results::rows;
use crate::cluster::Cluster;
use crate::coordinator::StatementOutput;
use crate::error::Result;

pub const FUNCTION: CitusFunction = CitusFunction {
    names: &["get_rebalance_progress"],
    superuser_only: false,
    rows: Some(rows_of),
    run: |coordinator, call| async move { rows_of(coordinator.cluster(), &call) }.boxed(),
};

fn rows_of(cluster: &Arc<Cluster>, call: &FunctionCall) -> Result<StatementOutput> {
    call.check_arity(0)?;
    let moves = cluster.moves.progress();
    let ints = |f: &dyn Fn(&crate::cluster::shard_moves::MoveProgress) -> i64| {
        Arc::new(Int64Array::from_iter_values(moves.iter().map(f)))
    };
    let texts = |f: &dyn Fn(&crate::cluster::shard_moves::MoveProgress) -> String| {
        Arc::new(StringArray::from_iter_values(moves.iter().map(f)))
    };
    let ports = |f: &dyn Fn(&crate::cluster::shard_moves::MoveProgress) -> u16| {
        Arc::new(Int32Array::from_iter_values(
            moves.iter().map(|m| i32::from(f(m))),
        ))
    };
    rows(vec![
        (
            "sessionid",
            Arc::new(Int32Array::from_iter_values(moves.iter().map(|_| 0))),
        ),
        ("table_name", texts(&|m| m.table_name.clone())),
        ("shardid", ints(&|m| m.shard_id.0)),
        ("shard_size", ints(&|m| m.shard_size as i64)),
        ("sourcename", texts(&|m| m.source.0.clone())),
        ("sourceport", ports(&|m| m.source.1)),
        ("targetname", texts(&|m| m.target.0.clone())),
        ("targetport", ports(&|m| m.target.1)),
        (
            "progress",
            Arc::new(Int32Array::from_iter_values(
                moves.iter().map(|m| m.progress),
            )),
        ),
        ("source_shard_size", ints(&|m| m.shard_size as i64)),
        ("target_shard_size", ints(&|m| m.bytes_copied as i64)),
        ("operation_type", texts(&|m| m.operation.to_string())),
        ("bytes_copied", ints(&|m| m.bytes_copied as i64)),
        ("status", texts(&|m| m.status.clone())),
    ])
}
