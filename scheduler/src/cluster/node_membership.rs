//! Which hosts become nodes: `citus_add_node`, worker self-registration and
//! `citus_remove_node`. A node that joins while reference tables exist serves only once it
//! holds a copy of each (copied worker to worker before the call returns).
//!
//! A host is added only after it answered a fresh membership challenge with proof that it
//! knows the cluster secret (`WorkerPool::prove_membership`); until then the coordinator sends
//! it nothing derived from the secret. A host that cannot prove it gets `PermissionDenied`
//! (`Unavailable` if it cannot be reached) and never appears in `pg_dist_node`.

use std::sync::Arc;

use prost::Message;
use shardfusion_catalog::Node;
use shardfusion_common::wire::{ACTION_PING, PingResponse};

use crate::cluster::shared_state::Cluster;
use crate::error::{Result, SchedulerError};

fn url_of(host: &str, port: u16) -> String {
    format!("http://{host}:{port}")
}

/// `citus_add_node(host, port)`: adds the worker at `host:port` once it proved membership.
pub async fn add_node(cluster: &Arc<Cluster>, host: &str, port: u16) -> Result<Node> {
    let address = format!("{host}:{port}");
    let identity = cluster
        .workers
        .prove_membership(&url_of(host, port))
        .await
        .map_err(|status| SchedulerError::Worker {
            node: address.clone(),
            status: tonic::Status::new(
                status.code(),
                format!("cannot add the node: {}", status.message()),
            ),
        })?;
    same_storage(cluster, &url_of(host, port), &address).await?;
    let node = cluster
        .catalog
        .add_proven_node(host, port, identity.as_str())?;
    join(cluster, node).await
}

/// Refuses a worker that keeps shard files elsewhere than the coordinator: on local disks
/// when the cluster shares object storage, in another bucket or prefix, or vice versa.
async fn same_storage(cluster: &Cluster, url: &str, address: &str) -> Result<()> {
    let answer = cluster
        .workers
        .do_action(url, arrow_flight::Action::new(ACTION_PING, Vec::new()))
        .await
        .map_err(|status| SchedulerError::Worker {
            node: address.to_string(),
            status,
        })?;
    // A worker from before storage was reported answers nothing: it keeps files locally.
    let storage = answer
        .first()
        .and_then(|r| PingResponse::decode(r.body.clone()).ok())
        .map(|p| p.storage)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "local".to_string());
    let ours = cluster.root.storage_label();
    if storage == ours {
        return Ok(());
    }
    Err(SchedulerError::cluster_state(format!(
        "the worker at {address} keeps shard files in {storage}, but this cluster keeps them \
         in {ours}: start every node with the same --storage"
    )))
}

/// A node that joined while reference tables existed gets them, then serves.
async fn join(cluster: &Arc<Cluster>, node: Node) -> Result<Node> {
    if !cluster.catalog.is_joining(node.node_id)? {
        return Ok(node);
    }
    crate::cluster::reference_copies::copy_reference_tables_to(cluster, node.group_id).await?;
    Ok(cluster.catalog.finish_join(node.node_id)?)
}

/// A worker announced itself (its `worker` process started) as `worker_uuid` at
/// `name:port`. Its request was MAC'd; the host at that address must also prove to be that
/// worker, so a registration cannot point the coordinator at another host.
pub async fn register_worker(
    cluster: &Arc<Cluster>,
    name: &str,
    port: u16,
    worker_uuid: &str,
) -> Result<Node> {
    let address = format!("{name}:{port}");
    let url = url_of(name, port);
    let identity = cluster
        .workers
        .prove_membership(&url)
        .await
        .map_err(|status| SchedulerError::Worker {
            node: address.clone(),
            status: tonic::Status::new(
                status.code(),
                format!(
                    "the coordinator cannot check the worker at its advertised address \
                     ({}); check --advertise-host and --listen: {}",
                    address,
                    status.message()
                ),
            ),
        })?;
    if identity.as_str() != worker_uuid {
        cluster.workers.forget(&url);
        return Err(SchedulerError::Worker {
            node: address.clone(),
            status: tonic::Status::permission_denied(format!(
                "worker {worker_uuid} registered with the address {address}, but the worker \
                 answering there is {identity}: check --advertise-host"
            )),
        });
    }
    same_storage(cluster, &url, &address).await?;
    let node = cluster.catalog.add_node(name, port, Some(worker_uuid))?;
    join(cluster, node).await
}

/// `citus_remove_node(host, port)`: removes a node that holds no shard placements.
pub fn remove_node(cluster: &Cluster, host: &str, port: u16) -> Result<Node> {
    let node = cluster.catalog.remove_node(host, port)?;
    cluster.workers.forget(&url_of(host, port));
    Ok(node)
}
