//! Newtype identifiers, so that a shard id can never be passed where a node id is expected.
//!
//! The numeric ranges follow Citus: shard ids start at 102008, node and group ids at 1
//! (group 0 is the coordinator), placement ids at 1.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $inner:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// A node of the cluster (`pg_dist_node.nodeid`).
    NodeId,
    i32
);
id_type!(
    /// The group a node belongs to (`pg_dist_node.groupid`); placements point at groups.
    GroupId,
    i32
);
id_type!(
    /// A shard (`pg_dist_shard.shardid`).
    ShardId,
    i64
);
id_type!(
    /// One copy of a shard on one group (`pg_dist_placement.placementid`).
    PlacementId,
    i64
);
id_type!(
    /// A table known to the catalog.
    TableId,
    i64
);
id_type!(
    /// A colocation group (`pg_dist_colocation.colocationid`).
    ColocationId,
    i32
);

impl GroupId {
    /// The coordinator's own group, which holds local tables.
    pub const COORDINATOR: GroupId = GroupId(0);
}
