//! [`WriteFence`]: holds off commits that would add files to one table, for a moment.
//!
//! `create_distributed_table` moves a table's rows while INSERTs keep committing files to it.
//! It catches up with those files in rounds; if they keep arriving, it fences the table, so
//! that its last round is sure to see every file and its commit succeeds. While the fence is
//! up, a commit that would add files to the table is refused with a retryable conflict
//! (checked inside the commit's write transaction).
//!
//! Fences live in memory, with the statement holding them: a restarted coordinator has no
//! distribution in flight, so there is nothing to recover.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use shardfusion_common::ids::TableId;

/// The fenced tables, with how many fences each has.
#[derive(Debug, Default)]
pub(crate) struct WriteFences(Mutex<HashMap<TableId, usize>>);

impl WriteFences {
    pub(crate) fn is_fenced(&self, table: TableId) -> bool {
        self.0.lock().contains_key(&table)
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
