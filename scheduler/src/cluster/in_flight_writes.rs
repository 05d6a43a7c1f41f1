//! Shard files some operation of this coordinator owns for now, and the files a collector is
//! about to delete.
//!
//! A file is *in flight* from before a node can create it (a statement's new file, a shard
//! copy on its target) or before a commit drops it from the catalog (a retiring file older
//! statements may still read) until the operation is done with it. The collectors
//! ([`crate::cluster::orphan_cleanup`]) never delete a file in flight.
//!
//! A collector decides on a file in two steps: it *claims* the paths it may delete (those not
//! in flight at that moment), then takes the catalog snapshot it decides with, and deletes.
//! New files have fresh names and cannot collide with a claim; but a copy re-creates a path
//! that may exist already (the leftover of an earlier, failed copy of the same shard file),
//! so a copy registers with [`InFlightWrites::begin_unclaimed`], which waits until no
//! collector holds a claim on that path. Either the copy registered first (and the claim
//! leaves the path alone), or the collector's deletion is over before the copy writes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use shardfusion_common::ids::GroupId;
use tokio::sync::Notify;

use crate::cluster::shared_state::Cluster;

/// The registry of files in flight and of collectors' claims, per node group.
#[derive(Debug, Clone, Default)]
pub struct InFlightWrites {
    state: Arc<Mutex<State>>,
    /// Woken when claims are released.
    released: Arc<Notify>,
}

#[derive(Debug, Default)]
struct State {
    /// Registrations per (node group, path): a path may be registered more than once.
    paths: HashMap<(GroupId, String), usize>,
    /// Paths collectors are deciding on or deleting, by [`Cluster::file_home`].
    claimed: HashSet<(GroupId, String)>,
}

/// Keeps one file registered in [`InFlightWrites`] until dropped.
#[derive(Debug)]
pub struct InFlightWrite {
    writes: InFlightWrites,
    key: (GroupId, String),
}

/// A collector's claim on paths it may delete; released when dropped.
#[derive(Debug)]
pub struct Claim {
    writes: InFlightWrites,
    home: GroupId,
    paths: HashSet<String>,
}

impl InFlightWrites {
    /// Registers a file whose name is new (no collector can have claimed it).
    pub fn begin(&self, group: GroupId, path: &str) -> InFlightWrite {
        let key = (group, path.to_string());
        *self.state.lock().paths.entry(key.clone()).or_default() += 1;
        InFlightWrite {
            writes: self.clone(),
            key,
        }
    }

    /// Registers a file that may exist already on `group` (a copy of a shard file), once no
    /// collector holds a claim on it.
    pub async fn begin_unclaimed(
        &self,
        cluster: &Cluster,
        group: GroupId,
        path: &str,
    ) -> InFlightWrite {
        self.begin_unclaimed_at(cluster.file_home(group), group, path)
            .await
    }

    async fn begin_unclaimed_at(&self, home: GroupId, group: GroupId, path: &str) -> InFlightWrite {
        let claimed = (home, path.to_string());
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut state = self.state.lock();
                if !state.claimed.contains(&claimed) {
                    let key = (group, path.to_string());
                    *state.paths.entry(key.clone()).or_default() += 1;
                    return InFlightWrite {
                        writes: self.clone(),
                        key,
                    };
                }
            }
            released.await;
        }
    }

    /// Claims those of `paths` at `home` ([`Cluster::file_home`]) that are neither in flight
    /// nor claimed by another collector.
    pub fn claim(
        &self,
        cluster: &Cluster,
        home: GroupId,
        paths: impl IntoIterator<Item = String>,
    ) -> Claim {
        self.claim_at(&|g| cluster.file_home(g), home, paths)
    }

    fn claim_at(
        &self,
        home_of: &dyn Fn(GroupId) -> GroupId,
        home: GroupId,
        paths: impl IntoIterator<Item = String>,
    ) -> Claim {
        let mut state = self.state.lock();
        let free: HashSet<String> = {
            let in_flight: HashSet<&str> = (state.paths.keys())
                .filter(|(g, _)| home_of(*g) == home)
                .map(|(_, p)| p.as_str())
                .collect();
            paths
                .into_iter()
                .filter(|p| {
                    !in_flight.contains(p.as_str()) && !state.claimed.contains(&(home, p.clone()))
                })
                .collect()
        };
        state.claimed.extend(free.iter().map(|p| (home, p.clone())));
        Claim {
            writes: self.clone(),
            home,
            paths: free,
        }
    }
}

impl Claim {
    /// Whether `path` is claimed.
    pub fn holds(&self, path: &str) -> bool {
        self.paths.contains(path)
    }
}

impl Drop for InFlightWrite {
    fn drop(&mut self) {
        let mut state = self.writes.state.lock();
        if let Some(count) = state.paths.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                state.paths.remove(&self.key);
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.paths.is_empty() {
            return;
        }
        let mut state = self.writes.state.lock();
        for path in self.paths.drain() {
            state.claimed.remove(&(self.home, path));
        }
        drop(state);
        self.writes.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const G: GroupId = GroupId(1);

    fn local(g: GroupId) -> GroupId {
        g
    }

    /// A collector never claims a path in flight, and a copy of a claimed path waits until
    /// the collector is done with it.
    #[tokio::test]
    async fn claims_skip_files_in_flight_and_copies_wait_for_claims() {
        let writes = InFlightWrites::default();
        let written = writes.begin(G, "a");
        let claim = writes.claim_at(&local, G, ["a".to_string(), "b".to_string()]);
        assert!(!claim.holds("a"), "in flight");
        assert!(claim.holds("b"));
        // Another collector gets nothing a claim holds.
        assert!(!writes.claim_at(&local, G, ["b".to_string()]).holds("b"));
        drop(written);

        let copy = tokio::spawn({
            let writes = writes.clone();
            async move { writes.begin_unclaimed_at(G, G, "b").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!copy.is_finished(), "the copy waits for the claim");
        drop(claim);
        let copying = tokio::time::timeout(Duration::from_secs(5), copy)
            .await
            .expect("the copy registers once the claim is released")
            .expect("joins");
        assert!(
            !writes.claim_at(&local, G, ["b".to_string()]).holds("b"),
            "the copy is in flight now"
        );
        drop(copying);
        assert!(writes.claim_at(&local, G, ["b".to_string()]).holds("b"));
    }
}
