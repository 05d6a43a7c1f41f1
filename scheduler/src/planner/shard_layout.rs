//! `Layout`: where the shard groups of a subtree that runs on the workers are, and when two
//! subtrees' shards line up (Citus's co-located joins): the same shard positions, on the same
//! nodes, over the same hash ranges.

use shardfusion_common::ids::{NodeId, ShardId};

/// Where the shard groups of a qualifying subtree are: position `i` of every scan in it is
/// shard index `indexes[i]` of its table, held by `nodes[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) indexes: Vec<usize>,
    /// The hash range of the shard at each position: shards of two tables line up only if
    /// their ranges are equal (a table with an isolated tenant has uneven ones).
    pub(super) ranges: Vec<Option<(i32, i32)>>,
    pub(super) nodes: Vec<NodeId>,
    pub(super) shard_ids: Vec<ShardId>,
    /// For subtrees over reference tables only: the workers that hold all of their data.
    pub(super) replicated_on: Option<Vec<NodeId>>,
    /// For subtrees over a worker-to-worker shuffle: `nodes` are the consumer workers (one
    /// task each), and the rows are partitioned by the shuffle keys, not by shards.
    pub(super) shuffled: bool,
}

impl Layout {
    /// Whether the subtree reads exactly one shard group, so anything above it may run there
    /// too. A subtree whose filters pruned every shard is not: it runs no task at all, and an
    /// aggregate without groups above it must still return its one row.
    pub(super) fn single_shard(&self) -> bool {
        self.nodes.len() == 1
    }

    /// How many distinct workers run the shard groups.
    pub(super) fn worker_count(&self) -> usize {
        let mut nodes = self.nodes.clone();
        nodes.sort();
        nodes.dedup();
        nodes.len()
    }

    pub(super) fn same_groups(&self, other: &Layout) -> bool {
        !self.shuffled
            && !other.shuffled
            && self.indexes == other.indexes
            && self.ranges == other.ranges
            && self.nodes == other.nodes
    }

    /// The consumer layout of a shuffle between the workers of `sides`.
    pub(super) fn shuffle_over(sides: &[&Layout]) -> Self {
        let mut nodes: Vec<NodeId> = sides.iter().flat_map(|l| l.nodes.iter().copied()).collect();
        nodes.sort();
        nodes.dedup();
        Layout {
            indexes: Vec::new(),
            ranges: Vec::new(),
            nodes,
            shard_ids: Vec::new(),
            replicated_on: None,
            shuffled: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(ranges: &[(i32, i32)]) -> Layout {
        Layout {
            indexes: (0..ranges.len()).collect(),
            ranges: ranges.iter().copied().map(Some).collect(),
            nodes: (0..ranges.len())
                .map(|i| NodeId(i as i32 % 2 + 1))
                .collect(),
            shard_ids: (0..ranges.len()).map(|i| ShardId(100 + i as i64)).collect(),
            replicated_on: None,
            shuffled: false,
        }
    }

    #[test]
    fn shards_line_up_only_over_equal_ranges() {
        let even = layout(&[(i32::MIN, -1), (0, 9), (10, 10), (11, i32::MAX)]);
        assert!(even.same_groups(&even.clone()));
        // Same positions on the same nodes, but one shard of the other table was split
        // differently (another tenant isolated): its rows are not where these are.
        let other = layout(&[(i32::MIN, -1), (0, 10), (11, 11), (12, i32::MAX)]);
        assert!(!even.same_groups(&other));
        let shuffled = Layout {
            shuffled: true,
            ..even.clone()
        };
        assert!(!even.same_groups(&shuffled));
    }
}
