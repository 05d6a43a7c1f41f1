//! Where the shards of a newly distributed table go.
//!
//! As in Citus: shard `i` of a new colocation group is placed on the `i mod n`-th active
//! worker; a table joining an existing colocation group mirrors the placements of the group's
//! shards index by index, so equal distribution values meet on the same worker; a reference
//! table's single shard is placed on every active worker.

use datafusion::arrow::datatypes::SchemaRef;
use shardfusion_common::hashing::shard_range;
use shardfusion_common::ids::{ColocationId, GroupId, PlacementId, ShardId, TableId};

use crate::model::{Colocation, TableKind};

/// How a table asks to be distributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistributionRequest {
    Distributed {
        column: String,
        /// `None` means "as the colocation target has it, else 32".
        shard_count: Option<usize>,
        colocate_with: ColocateWith,
    },
    Reference,
    /// `undistribute_table`: back to a local table on the coordinator.
    Local,
}

/// Citus's `colocate_with` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColocateWith {
    /// Join an existing group with the same shard count and column type, if any.
    Default,
    /// Always start a new group.
    None,
    /// Join the group of the named distributed table.
    Table(String),
}

impl ColocateWith {
    pub fn parse(value: &str) -> Self {
        match value.to_ascii_lowercase().as_str() {
            "default" => Self::Default,
            "none" => Self::None,
            _ => Self::Table(value.to_string()),
        }
    }
}

/// A placement to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPlacement {
    pub placement_id: PlacementId,
    pub group_id: GroupId,
}

/// A shard to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShard {
    pub shard_id: ShardId,
    pub index: usize,
    pub hash_range: Option<(i32, i32)>,
    pub placements: Vec<NewPlacement>,
}

/// How a plan's colocation group was chosen, which decides what its commit may do when the
/// groups changed during the move (see `distribution_store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupChoice {
    /// Default co-location: the planned group if it still exists, else an equal group
    /// created meanwhile, else the planned one (re)created.
    Default,
    /// `colocate_with => 'table'`: that table's group, re-created if it was dropped meanwhile.
    Table,
    /// `colocate_with => 'none'`: a new group of its own.
    Isolated,
}

/// Everything needed to move a table into its shards, decided before any row moves.
///
/// Ids are reserved when the plan is made; if the statement fails they are simply skipped.
#[derive(Debug, Clone)]
pub struct DistributionPlan {
    pub table_id: TableId,
    pub table_name: String,
    /// The columns the rows are moved with; the commit refuses if the table's changed.
    pub schema: SchemaRef,
    /// The table's kind after the commit (its colocation id is the planned group's; the
    /// commit may choose an equal one instead).
    pub kind: TableKind,
    /// The planned colocation group: an existing one, or a new one (its id reserved).
    pub colocation: Colocation,
    pub group_choice: GroupChoice,
    pub shards: Vec<NewShard>,
}

/// Each shard with the placements (and their groups) that hold it.
pub type ShardLayout = (ShardId, Vec<(PlacementId, GroupId)>);

impl DistributionPlan {
    /// Where the planned shards go.
    pub fn layout(&self) -> Vec<ShardLayout> {
        self.shards
            .iter()
            .map(|s| {
                let placements = s.placements.iter();
                (
                    s.shard_id,
                    placements.map(|p| (p.placement_id, p.group_id)).collect(),
                )
            })
            .collect()
    }
}

/// The node groups of the active workers new shards may be placed on; none is an error.
pub(crate) fn worker_groups(
    snapshot: &crate::model::CatalogSnapshot,
) -> Result<Vec<GroupId>, crate::error::CatalogError> {
    let workers: Vec<GroupId> = snapshot
        .active_workers()
        .iter()
        .map(|n| n.group_id)
        .collect();
    if workers.is_empty() {
        return Err(crate::error::CatalogError::NoWorkers);
    }
    Ok(workers)
}

/// Assigns groups to `shard_count` shards: mirrored from `mirror` when given, else round-robin.
pub(crate) fn assign_groups(
    shard_count: usize,
    workers: &[GroupId],
    mirror: Option<&[Vec<GroupId>]>,
) -> Vec<Vec<GroupId>> {
    (0..shard_count)
        .map(|i| match mirror {
            Some(groups) if groups.len() == shard_count && !groups[i].is_empty() => {
                groups[i].clone()
            }
            _ => vec![workers[i % workers.len()]],
        })
        .collect()
}

/// Hash ranges of a distributed table's shards.
pub(crate) fn ranges(shard_count: usize) -> Vec<Option<(i32, i32)>> {
    (0..shard_count)
        .map(|i| Some(shard_range(i, shard_count)))
        .collect()
}

/// A new colocation group.
pub(crate) fn new_colocation(
    id: ColocationId,
    shard_count: usize,
    column_type: String,
) -> Colocation {
    Colocation {
        colocation_id: id,
        shard_count: shard_count as i32,
        replication_factor: 1,
        distribution_column_type: column_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_and_mirroring() {
        let workers = [GroupId(1), GroupId(2)];
        let groups = assign_groups(4, &workers, None);
        assert_eq!(
            groups,
            vec![
                vec![GroupId(1)],
                vec![GroupId(2)],
                vec![GroupId(1)],
                vec![GroupId(2)]
            ]
        );
        let mirrored = assign_groups(4, &[GroupId(9)], Some(&groups));
        assert_eq!(mirrored, groups);
    }
}
