//! Planning `undistribute_table` in the catalog: the reverse of a distribution. The plan
//! reserves one shard with one placement on the coordinator, as a local table has; the rows
//! move into it, and [`Catalog::commit_distribution`] switches the table to local with the
//! same checks as a distribution (the table still distributed, with the columns the rows moved
//! with, and its files exactly those seen: more, another round; fewer, a retryable conflict).
//! The colocation group the table leaves stays, with its other members.

use rusqlite::TransactionBehavior;
use shardfusion_common::ids::GroupId;

use crate::error::CatalogError;
use crate::layout::{DistributionPlan, GroupChoice};
use crate::model::TableKind;
use crate::store::{Catalog, reserve_shards};

type Result<T> = std::result::Result<T, CatalogError>;

impl Catalog {
    /// Reserves the local shard of distributed or reference table `name`, about to become
    /// local; nothing is visible until [`Catalog::commit_distribution`].
    pub(crate) fn plan_undistribution(&self, name: &str) -> Result<DistributionPlan> {
        let snapshot = self.snapshot();
        let table = snapshot
            .table(name)
            .ok_or_else(|| CatalogError::TableNotFound {
                name: name.to_string(),
            })?;
        let colocation_id = match &table.kind {
            TableKind::Local => {
                return Err(CatalogError::NotDistributed {
                    name: name.to_string(),
                });
            }
            TableKind::Distributed { colocation_id, .. }
            | TableKind::Reference { colocation_id } => *colocation_id,
        };
        let colocation = snapshot
            .colocations
            .get(&colocation_id)
            .cloned()
            .ok_or(CatalogError::ColocationNotFound { id: colocation_id })?;
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let shards =
            self.taking_ids(|| reserve_shards(&tx, &[vec![GroupId::COORDINATOR]], &[None]))?;
        tx.commit()?;
        Ok(DistributionPlan {
            table_id: table.table_id,
            table_name: name.to_string(),
            schema: std::sync::Arc::clone(&table.schema),
            kind: TableKind::Local,
            colocation,
            group_choice: GroupChoice::Default,
            shards,
        })
    }
}
