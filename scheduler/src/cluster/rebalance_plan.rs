//! The rebalancer's plan: which shard groups to move where, as Citus's
//! `get_rebalance_table_shards_plan()` lists them.
//!
//! The unit of a move is a shard group (a shard index of a colocation group, with the shard of
//! every co-located table). Nodes that may hold shards are the active workers with
//! `shouldhaveshards`; every shard group on another node (drained, or set not to have
//! shards) is moved off first, to the node that holds the fewest shard groups of its
//! colocation group (then the least overall). Then, unless `drain_only`:
//! - `by_shard_count` (the default): within each colocation group, a shard group moves from
//!   the node holding the most of that colocation group's shard groups to the one holding the
//!   fewest, until they differ by at most one; then, across colocation groups, from the node
//!   holding the most shard groups overall to the one holding the fewest, while some
//!   colocation group allows it without unbalancing itself, until the totals differ by at
//!   most one.
//! - `by_disk_size`: the cost of a shard group is its bytes (every co-located table's files);
//!   a shard group moves from the fullest node to the emptiest while that lowers the fullest
//!   node's bytes, until the two are within `threshold` of the average node.

use std::collections::{BTreeMap, BTreeSet};

use shardfusion_catalog::{CatalogSnapshot, TableKind};
use shardfusion_common::ids::{ColocationId, GroupId, ShardId};

use crate::cluster::shard_moves::ShardGroup;

/// How the rebalancer weighs shard groups (Citus's `rebalance_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    ByShardCount,
    ByDiskSize,
}

impl Strategy {
    /// The strategy Citus calls `name`.
    pub fn named(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "by_shard_count" => Some(Self::ByShardCount),
            "by_disk_size" => Some(Self::ByDiskSize),
            _ => None,
        }
    }
}

/// What to plan for.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub strategy: Strategy,
    /// Only this table's colocation group; every colocation group when `None`.
    pub relation: Option<String>,
    /// Only move shard groups off nodes that should not hold them.
    pub drain_only: bool,
    /// `by_disk_size`: stop when the fullest and emptiest nodes are within this share of the
    /// average node's bytes (Citus's `threshold`, default 0.1).
    pub threshold: f64,
    /// At most this many moves (`max_shard_moves`); all when `None`.
    pub max_moves: Option<usize>,
    /// With `drain_only`: only the shard groups on this node group move (`citus_drain_node`);
    /// others on nodes that should not hold shards stay.
    pub drain_group: Option<GroupId>,
}

/// One planned move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMove {
    pub group: ShardGroup,
    /// The shard of the colocation group's first table, which names the move.
    pub shard_id: ShardId,
    pub table_name: String,
    /// Bytes of the shard group.
    pub shard_size: u64,
    pub from: GroupId,
    pub to: GroupId,
}

/// One shard group's placement on one node, and what it weighs.
#[derive(Debug, Clone)]
struct Unit {
    group: ShardGroup,
    shard_id: ShardId,
    table_name: String,
    bytes: u64,
    node: GroupId,
}

/// The moves that balance the cluster of `snapshot` per `options`.
pub fn plan_rebalance(
    snapshot: &CatalogSnapshot,
    options: &PlanOptions,
) -> Result<Vec<PlannedMove>, String> {
    let targets: Vec<GroupId> = snapshot
        .active_workers()
        .iter()
        .map(|n| n.group_id)
        .collect();
    let only = match &options.relation {
        Some(name) => {
            let table = snapshot
                .table(name)
                .ok_or_else(|| format!("relation \"{name}\" does not exist"))?;
            match table.kind {
                TableKind::Distributed { colocation_id, .. } => Some(colocation_id),
                _ => return Err(format!("{name} is not a distributed table")),
            }
        }
        None => None,
    };
    let mut units = units_of(snapshot, only);
    if targets.is_empty() {
        return if units.is_empty() {
            Ok(Vec::new())
        } else {
            Err(
                "no active worker may hold shards: citus_activate_node a node or set \
                 shouldhaveshards on one"
                    .into(),
            )
        };
    }
    let mut moves = Vec::new();
    // Off the nodes that should not hold shards.
    for i in 0..units.len() {
        let node = units[i].node;
        if targets.contains(&node) || options.drain_group.is_some_and(|g| g != node) {
            continue;
        }
        let colocation = units[i].group.colocation_id;
        let to = *targets
            .iter()
            .min_by_key(|t| (count_in(&units, colocation, **t), total(&units, **t), **t))
            .expect("targets is not empty");
        moves.push(move_unit(&mut units, i, to));
    }
    if !options.drain_only {
        match options.strategy {
            Strategy::ByShardCount => balance_counts(&mut units, &targets, &mut moves),
            Strategy::ByDiskSize => balance_bytes(&mut units, &targets, options, &mut moves),
        }
    }
    let mut moves = merged(moves);
    if let Some(max) = options.max_moves {
        moves.truncate(max);
    }
    Ok(moves)
}

/// One move per shard group placement: a placement moved twice (off a drained node, then
/// again to balance) moves once, from where it is to where it ends; one that ends where it
/// started does not move. So moves of a plan never depend on each other and may run in
/// parallel.
fn merged(moves: Vec<PlannedMove>) -> Vec<PlannedMove> {
    let mut out: Vec<PlannedMove> = Vec::with_capacity(moves.len());
    for planned in moves {
        match out
            .iter_mut()
            .find(|m| m.group == planned.group && m.to == planned.from)
        {
            Some(earlier) => earlier.to = planned.to,
            None => out.push(planned),
        }
    }
    out.retain(|m| m.from != m.to);
    out
}

/// Every shard group placement of the distributed tables (of colocation group `only`).
fn units_of(snapshot: &CatalogSnapshot, only: Option<ColocationId>) -> Vec<Unit> {
    let mut units: BTreeMap<(ShardGroup, GroupId), Unit> = BTreeMap::new();
    for table in snapshot.tables.values() {
        let TableKind::Distributed { colocation_id, .. } = table.kind else {
            continue;
        };
        if only.is_some_and(|c| c != colocation_id) {
            continue;
        }
        for shard in &table.shards {
            let Some(group) = ShardGroup::of(colocation_id, shard) else {
                continue;
            };
            for placement in &shard.placements {
                let unit = units.entry((group, placement.group_id)).or_insert(Unit {
                    group,
                    shard_id: shard.shard_id,
                    table_name: table.name.clone(),
                    bytes: 0,
                    node: placement.group_id,
                });
                unit.bytes += placement.byte_size();
            }
        }
    }
    units.into_values().collect()
}

fn count_in(units: &[Unit], colocation: ColocationId, node: GroupId) -> usize {
    units
        .iter()
        .filter(|u| u.node == node && u.group.colocation_id == colocation)
        .count()
}

fn total(units: &[Unit], node: GroupId) -> usize {
    units.iter().filter(|u| u.node == node).count()
}

fn bytes_on(units: &[Unit], node: GroupId) -> u64 {
    units
        .iter()
        .filter(|u| u.node == node)
        .map(|u| u.bytes)
        .sum()
}

/// Whether `node` already holds a placement of the shard group of `units[i]`.
fn holds(units: &[Unit], i: usize, node: GroupId) -> bool {
    units
        .iter()
        .any(|u| u.group == units[i].group && u.node == node)
}

fn move_unit(units: &mut [Unit], i: usize, to: GroupId) -> PlannedMove {
    let unit = &mut units[i];
    let planned = PlannedMove {
        group: unit.group,
        shard_id: unit.shard_id,
        table_name: unit.table_name.clone(),
        shard_size: unit.bytes,
        from: unit.node,
        to,
    };
    unit.node = to;
    planned
}

/// `by_shard_count`: see the module docs.
fn balance_counts(units: &mut [Unit], targets: &[GroupId], moves: &mut Vec<PlannedMove>) {
    let colocations: BTreeSet<ColocationId> = units.iter().map(|u| u.group.colocation_id).collect();
    for colocation in colocations {
        loop {
            let count = |n: GroupId, units: &[Unit]| count_in(units, colocation, n);
            let (Some(&most), Some(&fewest)) = (
                targets
                    .iter()
                    .max_by_key(|t| (count(**t, units), total(units, **t), std::cmp::Reverse(**t))),
                targets
                    .iter()
                    .min_by_key(|t| (count(**t, units), total(units, **t), **t)),
            ) else {
                return;
            };
            if count(most, units) <= count(fewest, units) + 1 {
                break;
            }
            let Some(i) = units
                .iter()
                .rposition(|u| u.node == most && u.group.colocation_id == colocation)
            else {
                break;
            };
            if holds(units, i, fewest) {
                break;
            }
            moves.push(move_unit(units, i, fewest));
        }
    }
    // Across colocation groups.
    for _ in 0..units.len() {
        let most = *targets
            .iter()
            .max_by_key(|t| (total(units, **t), std::cmp::Reverse(**t)))
            .expect("targets is not empty");
        let fewest = *targets
            .iter()
            .min_by_key(|t| (total(units, **t), **t))
            .expect("targets is not empty");
        if total(units, most) <= total(units, fewest) + 1 {
            return;
        }
        let candidate = units.iter().rposition(|u| {
            u.node == most
                && count_in(units, u.group.colocation_id, most)
                    > count_in(units, u.group.colocation_id, fewest)
        });
        match candidate {
            Some(i) if !holds(units, i, fewest) => moves.push(move_unit(units, i, fewest)),
            _ => return,
        }
    }
}

/// `by_disk_size`: see the module docs.
fn balance_bytes(
    units: &mut [Unit],
    targets: &[GroupId],
    options: &PlanOptions,
    moves: &mut Vec<PlannedMove>,
) {
    let threshold = if options.threshold > 0.0 {
        options.threshold
    } else {
        0.1
    };
    for _ in 0..units.len() * 2 {
        let fullest = *targets
            .iter()
            .max_by_key(|t| (bytes_on(units, **t), std::cmp::Reverse(**t)))
            .expect("targets is not empty");
        let emptiest = *targets
            .iter()
            .min_by_key(|t| (bytes_on(units, **t), **t))
            .expect("targets is not empty");
        let (high, low) = (bytes_on(units, fullest), bytes_on(units, emptiest));
        let average = units.iter().map(|u| u.bytes).sum::<u64>() as f64 / targets.len() as f64;
        if high - low <= (average * threshold) as u64 {
            return;
        }
        // The shard group whose move leaves the two nodes closest, if it lowers the fullest.
        let best = units
            .iter()
            .enumerate()
            .filter(|(i, u)| u.node == fullest && u.bytes > 0 && !holds(units, *i, emptiest))
            .filter(|(_, u)| low + u.bytes < high)
            .min_by_key(|(_, u)| (high - u.bytes).abs_diff(low + u.bytes))
            .map(|(i, _)| i);
        match best {
            Some(i) => moves.push(move_unit(units, i, emptiest)),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(colocation: i32, index: usize, node: i32, bytes: u64) -> Unit {
        Unit {
            group: ShardGroup {
                colocation_id: ColocationId(colocation),
                range: (index as i32, index as i32),
            },
            shard_id: ShardId(index as i64),
            table_name: "t".into(),
            bytes,
            node: GroupId(node),
        }
    }

    fn counts(units: &[Unit], targets: &[GroupId]) -> Vec<usize> {
        targets.iter().map(|t| total(units, *t)).collect()
    }

    /// The largest minus the smallest of `values`.
    fn spread(values: &[usize]) -> usize {
        let max = values.iter().max().copied().unwrap_or_default();
        let min = values.iter().min().copied().unwrap_or_default();
        max - min
    }

    #[test]
    fn counts_even_out_per_colocation_group_and_overall() {
        // Two colocation groups of 32 shards on 2 nodes; a third node joins.
        let mut units: Vec<Unit> = (0..32)
            .flat_map(|i| {
                [
                    unit(1, i, 1 + (i % 2) as i32, 10),
                    unit(2, i, 1 + (i % 2) as i32, 10),
                ]
            })
            .collect();
        let targets = [GroupId(1), GroupId(2), GroupId(3)];
        let mut moves = Vec::new();
        balance_counts(&mut units, &targets, &mut moves);
        let per_node = counts(&units, &targets);
        assert!(spread(&per_node) <= 1, "{per_node:?}");
        for colocation in [1, 2] {
            let c: Vec<usize> = targets
                .iter()
                .map(|t| count_in(&units, ColocationId(colocation), *t))
                .collect();
            assert!(spread(&c) <= 1, "{c:?}");
        }
        // Only what must move: 64 shard groups, a third of them (21 or 22) to the new node.
        assert!((21..=22).contains(&moves.len()), "{}", moves.len());
        assert!(moves.iter().all(|m| m.to == GroupId(3)));
        // Balanced already: nothing to do.
        let mut again = Vec::new();
        balance_counts(&mut units, &targets, &mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn a_placement_moved_twice_moves_once() {
        let group = ShardGroup {
            colocation_id: ColocationId(1),
            range: (0, 0),
        };
        let planned = |from, to| PlannedMove {
            group,
            shard_id: ShardId(1),
            table_name: "t".into(),
            shard_size: 0,
            from: GroupId(from),
            to: GroupId(to),
        };
        assert_eq!(
            merged(vec![planned(1, 2), planned(2, 3)]),
            vec![planned(1, 3)]
        );
        assert!(merged(vec![planned(1, 2), planned(2, 1)]).is_empty());
    }

    #[test]
    fn disk_size_moves_bytes_toward_the_emptiest() {
        let mut units = vec![
            unit(1, 0, 1, 100),
            unit(1, 1, 1, 100),
            unit(1, 2, 1, 100),
            unit(1, 3, 2, 10),
        ];
        let targets = [GroupId(1), GroupId(2)];
        let mut moves = Vec::new();
        balance_bytes(&mut units, &targets, &PlanOptions::default(), &mut moves);
        assert_eq!(moves.len(), 1);
        assert_eq!(
            (bytes_on(&units, GroupId(1)), bytes_on(&units, GroupId(2))),
            (200, 110)
        );
    }
}
