//! [`WriteFence`]: holds off commits that would add files to one table, for a moment.
//!
//! `create_distributed_table` moves a table's rows while INSERTs keep committing files to it.
//! It catches up with those files in rounds; if they keep arriving, it fences the table, so
//! that its last round is sure to see every file and its commit succeeds. While the fence is
//! up, a commit that would add files to the table is refused with a retryable conflict
//! (checked inside the commit's write transaction).
//!
//! A shard move fences placements the same way for the last round of its copy, so that its
//! switch is sure to see every file; writes into them wait and retry.
//!
//! Fences live in memory, with the statement holding them: a restarted coordinator has no
//! distribution in flight, so there is nothing to recover.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use shardfusion_common::ids::{PlacementId, TableId};

/// The fenced tables, with how many fences each has, and the fenced placements.
#[derive(Debug, Default)]
pub(crate) struct WriteFences(
    Mutex<HashMap<TableId, usize>>,
    Mutex<HashMap<PlacementId, usize>>,
);

impl WriteFences {
    pub(crate) fn is_fenced(&self, table: TableId) -> bool {
        self.0.lock().contains_key(&table)
    }

    pub(crate) fn is_placement_fenced(&self, placement: PlacementId) -> bool {
        self.1.lock().contains_key(&placement)
    }

    /// Fences `placements` (a shard move about to switch them); the caller must hold the
    /// catalog's write lock.
    pub(crate) fn raise_placements(self: &Arc<Self>, placements: &[PlacementId]) -> PlacementFence {
        let mut fenced = self.1.lock();
        for placement in placements {
            *fenced.entry(*placement).or_default() += 1;
        }
        PlacementFence {
            fences: Arc::clone(self),
            placements: placements.to_vec(),
        }
    }

    /// Raises a fence on `table`. The caller must hold the catalog's write lock, so that no
    /// commit is between its check and its end.
    pub(crate) fn raise(self: &Arc<Self>, table: TableId) -> WriteFence {
        *self.0.lock().entry(table).or_default() += 1;
        WriteFence {
            fences: Arc::clone(self),
            table,
        }
    }
}

/// A fence on one table; dropping it lifts the fence.
#[derive(Debug)]
pub struct WriteFence {
    fences: Arc<WriteFences>,
    table: TableId,
}

impl Drop for WriteFence {
    fn drop(&mut self) {
        let mut fenced = self.fences.0.lock();
        if let Some(count) = fenced.get_mut(&self.table) {
            *count -= 1;
            if *count == 0 {
                fenced.remove(&self.table);
            }
        }
    }
}

/// A fence on placements a shard move is switching: commits into them wait (they are
/// refused with [`crate::ConcurrentChange::BeingMoved`], which writers retry) until it drops.
#[derive(Debug)]
pub struct PlacementFence {
    fences: Arc<WriteFences>,
    placements: Vec<PlacementId>,
}

impl Drop for PlacementFence {
    fn drop(&mut self) {
        let mut fenced = self.fences.1.lock();
        for placement in &self.placements {
            if let Some(count) = fenced.get_mut(placement) {
                *count -= 1;
                if *count == 0 {
                    fenced.remove(placement);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_fenced_until_its_last_fence_drops() {
        let fences = Arc::new(WriteFences::default());
        let first = fences.raise(TableId(1));
        let second = fences.raise(TableId(1));
        assert!(fences.is_fenced(TableId(1)));
        assert!(!fences.is_fenced(TableId(2)));
        drop(first);
        assert!(fences.is_fenced(TableId(1)));
        drop(second);
        assert!(!fences.is_fenced(TableId(1)));
    }
}
