//! Worker membership in the catalog (`pg_dist_node`): adding, re-registering and removing
//! nodes.
//!
//! A node added while reference tables exist joins inactive, and serves once the coordinator
//! copied them to it (`is_joining`, `finish_join`), as Citus copies reference tables to a new
//! node before it is used.
//!
//! A node's `worker_uuid` is the identity its worker proved to the coordinator (see
//! `shardfusion_common::auth::membership`). Callers add a node only after that proof; the
//! catalog keeps identities unique and never drops a node that still holds placements.

use rusqlite::{OptionalExtension, Transaction, params};
use shardfusion_common::ids::NodeId;

use crate::error::CatalogError;
use crate::model::Node;
use crate::store::{Catalog, next_id};

type Result<T> = std::result::Result<T, CatalogError>;

impl Catalog {
    /// A worker announced itself: adds it, or returns it if already known.
    ///
    /// A worker that registers with a `worker_uuid` it used before keeps its node id and
    /// shards even if its host or port changed.
    pub fn add_node(&self, name: &str, port: u16, worker_uuid: Option<&str>) -> Result<Node> {
        let node_id = self.write(|tx| upsert_node(tx, name, port, worker_uuid))?;
        self.node_by_id(node_id)
    }

    /// `citus_add_node`: adds the worker that proved identity `worker_uuid` at `name:port`,
    /// or returns it if it is already that node.
    ///
    /// Refuses an identity that is already a node at another address: a worker has one
    /// address, and a host that relays another node's proof must not take over its shards.
    pub fn add_proven_node(&self, name: &str, port: u16, worker_uuid: &str) -> Result<Node> {
        let node_id = self.write(|tx| {
            let existing: Option<(i32, String, u16)> = tx
                .query_row(
                    "SELECT nodeid, nodename, nodeport FROM nodes WHERE worker_uuid = ?1",
                    params![worker_uuid],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((node_id, other_name, other_port)) = existing
                && (other_name != name || other_port != port)
            {
                return Err(CatalogError::NodeIdentityInUse {
                    address: format!("{name}:{port}"),
                    node_id: NodeId(node_id),
                    existing: format!("{other_name}:{other_port}"),
                });
            }
            upsert_node(tx, name, port, Some(worker_uuid))
        })?;
        self.node_by_id(node_id)
    }

    /// `citus_remove_node`: removes the node at `name:port`, which must hold no placements of
    /// distributed or local tables (drain it, or drop those tables, first). Its copies of
    /// reference tables go with it, as in Citus; their files stay in the node's data
    /// directory, which leaves the cluster.
    pub fn remove_node(&self, name: &str, port: u16) -> Result<Node> {
        let address = format!("{name}:{port}");
        let removed = self.write(|tx| {
            let found: Option<(i32, i32)> = tx
                .query_row(
                    "SELECT nodeid, groupid FROM nodes WHERE nodename = ?1 AND nodeport = ?2",
                    params![name, port],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((node_id, group_id)) = found else {
                return Err(CatalogError::NodeNotFound {
                    address: address.clone(),
                });
            };
            // Checked inside the write transaction, so no placement can be added between the
            // check and the delete.
            let placements: i64 = tx.query_row(
                "SELECT count(*) FROM placements p JOIN shards s USING (shardid) \
                 JOIN tables t USING (table_id) WHERE p.groupid = ?1 AND t.kind <> 'reference'",
                params![group_id],
                |r| r.get(0),
            )?;
            if placements > 0 {
                return Err(CatalogError::NodeHasPlacements {
                    address: address.clone(),
                    placements: placements as u64,
                });
            }
            let last_copies: i64 = tx.query_row(
                "SELECT count(*) FROM placements p WHERE p.groupid = ?1 AND \
                 (SELECT count(*) FROM placements q WHERE q.shardid = p.shardid) = 1",
                params![group_id],
                |r| r.get(0),
            )?;
            if last_copies > 0 {
                return Err(CatalogError::NodeHasPlacements {
                    address: address.clone(),
                    placements: last_copies as u64,
                });
            }
            let node = self.snapshot().node(NodeId(node_id)).cloned();
            tx.execute(
                "DELETE FROM placements WHERE groupid = ?1",
                params![group_id],
            )?;
            tx.execute(
                "DELETE FROM joining_nodes WHERE nodeid = ?1",
                params![node_id],
            )?;
            tx.execute("DELETE FROM nodes WHERE nodeid = ?1", params![node_id])?;
            Ok(node)
        })?;
        removed.ok_or(CatalogError::NodeNotFound { address })
    }

    /// `citus_set_node_property(..., 'shouldhaveshards', value)`: whether new shards (new
    /// distributed tables, and rebalancing) may be placed on the node at `name:port`.
    /// Placements it holds stay where they are until it is rebalanced or drained.
    pub fn set_should_have_shards(&self, name: &str, port: u16, value: bool) -> Result<Node> {
        self.set_node_flag(name, port, NodeFlag::ShouldHaveShards, value)
    }

    /// `citus_disable_node` / `citus_activate_node`: whether the node at `name:port` serves
    /// queries. A disabled node's placements are not read, and it gets no new shards.
    pub fn set_node_active(&self, name: &str, port: u16, active: bool) -> Result<Node> {
        self.set_node_flag(name, port, NodeFlag::IsActive, active)
    }

    fn set_node_flag(&self, name: &str, port: u16, flag: NodeFlag, value: bool) -> Result<Node> {
        let column = match flag {
            NodeFlag::ShouldHaveShards => "shouldhaveshards",
            NodeFlag::IsActive => "isactive",
        };
        let node_id = self.write(|tx| {
            tx.query_row(
                &format!(
                    "UPDATE nodes SET {column} = ?1 WHERE nodename = ?2 AND nodeport = ?3 \
                     RETURNING nodeid"
                ),
                params![value, name, port],
                |r| r.get::<_, i32>(0),
            )
            .optional()?
            .ok_or_else(|| CatalogError::NodeNotFound {
                address: format!("{name}:{port}"),
            })
        })?;
        self.node_by_id(node_id)
    }

    /// Whether node `node` joined while reference tables existed and has not received them
    /// yet: it stays inactive until [`Catalog::finish_join`].
    pub fn is_joining(&self, node: NodeId) -> Result<bool> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                "SELECT 1 FROM joining_nodes WHERE nodeid = ?1",
                params![node.0],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// A joining node received the reference tables: it is active from now on.
    pub fn finish_join(&self, node: NodeId) -> Result<Node> {
        self.write(|tx| {
            let joining = tx.execute(
                "DELETE FROM joining_nodes WHERE nodeid = ?1",
                params![node.0],
            )?;
            if joining > 0 {
                tx.execute(
                    "UPDATE nodes SET isactive = 1 WHERE nodeid = ?1",
                    params![node.0],
                )?;
            }
            Ok(())
        })?;
        self.node_by_id(node.0)
    }

    fn node_by_id(&self, node_id: i32) -> Result<Node> {
        self.snapshot()
            .node(NodeId(node_id))
            .cloned()
            .ok_or(CatalogError::NoWorkers)
    }
}

/// A node's boolean columns that Citus's functions set.
#[derive(Debug, Clone, Copy)]
enum NodeFlag {
    ShouldHaveShards,
    IsActive,
}

/// Updates the node known by `worker_uuid` (or else by address) to `name:port`, or inserts a
/// new one; returns its id.
fn upsert_node(
    tx: &Transaction<'_>,
    name: &str,
    port: u16,
    worker_uuid: Option<&str>,
) -> Result<i32> {
    if let Some(uuid) = worker_uuid {
        let existing: Option<i32> = tx
            .query_row(
                "SELECT nodeid FROM nodes WHERE worker_uuid = ?1",
                params![uuid],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            tx.execute(
                "UPDATE nodes SET nodename = ?1, nodeport = ?2 WHERE nodeid = ?3",
                params![name, port, id],
            )?;
            return Ok(id);
        }
    }
    let existing: Option<i32> = tx
        .query_row(
            "SELECT nodeid FROM nodes WHERE nodename = ?1 AND nodeport = ?2",
            params![name, port],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        if let Some(uuid) = worker_uuid {
            tx.execute(
                "UPDATE nodes SET worker_uuid = ?1 WHERE nodeid = ?2",
                params![uuid, id],
            )?;
        }
        return Ok(id);
    }
    let id = next_id(tx, "nodeid", 1)? as i32;
    // With reference tables to copy first, the node joins inactive (see `finish_join`).
    let references: i64 = tx.query_row(
        "SELECT count(*) FROM tables WHERE kind = 'reference'",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO nodes (nodeid, groupid, nodename, nodeport, worker_uuid, isactive) \
         VALUES (?1, ?1, ?2, ?3, ?4, ?5)",
        params![id, name, port, worker_uuid, references == 0],
    )?;
    if references > 0 {
        tx.execute(
            "INSERT INTO joining_nodes (nodeid) VALUES (?1)",
            params![id],
        )?;
    }
    Ok(id)
}

/// Nodes added while reference tables existed, which serve only once they hold a copy of
/// each (`Catalog::finish_join`).
pub(crate) const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS joining_nodes (nodeid INTEGER PRIMARY KEY);";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proven_identity_has_one_address() -> Result<()> {
        let catalog = Catalog::open_in_memory()?;
        let node = catalog.add_proven_node("h1", 9001, "w1")?;
        assert_eq!(
            catalog.add_proven_node("h1", 9001, "w1")?.node_id,
            node.node_id
        );
        assert!(matches!(
            catalog.add_proven_node("relay", 9999, "w1"),
            Err(CatalogError::NodeIdentityInUse { .. })
        ));
        assert_eq!(catalog.snapshot().nodes.len(), 1);
        Ok(())
    }

    #[test]
    fn removes_only_unknown_free_nodes() -> Result<()> {
        let catalog = Catalog::open_in_memory()?;
        catalog.add_proven_node("h1", 9001, "w1")?;
        assert!(matches!(
            catalog.remove_node("h1", 9002),
            Err(CatalogError::NodeNotFound { .. })
        ));
        let removed = catalog.remove_node("h1", 9001)?;
        assert_eq!(removed.node_port, 9001);
        assert!(catalog.snapshot().nodes.is_empty());
        Ok(())
    }
}
