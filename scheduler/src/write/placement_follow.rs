//! A write that raced a shard move (or a reference table's new copy) follows its shards'
//! placements: the files it wrote are re-targeted at the placements the shards have now.
//!
//! A placement now on a node group that holds a copy the statement wrote takes that copy; a
//! placement elsewhere gets the files copied there from a group that has them, worker to
//! worker ([`crate::cluster::shard_copy`]). Copies no placement takes any more are strays,
//! never committed. If a copy fails, the copies made so far are deleted and the statement's
//! own files are left to the caller, which deletes them with the failed statement.
//!
//! On shared object storage a "copy" is the same object taken over by the new node: it is
//! never deleted here, and a statement's file is a stray only if no placement takes its path.

use std::collections::BTreeMap;
use std::sync::Arc;

use shardfusion_catalog::FileMeta;
use shardfusion_common::ids::{GroupId, PlacementId};

use crate::cluster::in_flight_writes::InFlightWrite;
use crate::cluster::shard_copy::copy_files;
use crate::cluster::shared_state::Cluster;
use crate::error::Result;

/// The files re-targeted at the placements their shards have now.
pub(crate) struct Followed {
    /// The files to commit, with the placements and node groups they are on now.
    pub files: Vec<(PlacementId, GroupId, FileMeta)>,
    /// The new copies, registered as in flight until they are committed or deleted.
    pub protected: Vec<InFlightWrite>,
    /// Copies no placement takes: delete them.
    pub stray: Vec<(GroupId, FileMeta)>,
}

/// Re-targets `written` (files of `table` with the placements and groups they were written
/// to) at the placements of the latest catalog state; see the module docs.
pub(crate) async fn follow_placements(
    cluster: &Arc<Cluster>,
    table: &str,
    written: &[(PlacementId, GroupId, FileMeta)],
) -> Result<Followed> {
    let latest = cluster.catalog.snapshot();
    let mut followed = Followed {
        files: Vec::new(),
        protected: Vec::new(),
        stray: Vec::new(),
    };
    let Some(meta) = latest.table(table) else {
        // Dropped: the commit will say so.
        followed.files = written.to_vec();
        return Ok(followed);
    };
    let mut left = written.to_vec();
    let mut made: Vec<(GroupId, FileMeta)> = Vec::new();
    for shard in &meta.shards {
        let ids: Vec<PlacementId> = shard.placements.iter().map(|p| p.placement_id).collect();
        // This statement's copies of the shard's files, by node group.
        let mut copies: BTreeMap<GroupId, Vec<FileMeta>> = BTreeMap::new();
        left.retain(|(p, g, f)| {
            let ours = ids.contains(p);
            if ours {
                copies.entry(*g).or_default().push(f.clone());
            }
            !ours
        });
        let Some((&source, source_files)) = copies.iter().next() else {
            continue;
        };
        let source_files = source_files.clone();
        for placement in &shard.placements {
            let group = placement.group_id;
            let files = match copies.get(&group) {
                Some(files) => files.clone(),
                None => {
                    for file in &source_files {
                        let in_flight = (cluster.orphans.in_flight())
                            .begin_unclaimed(cluster, group, &file.path);
                        followed.protected.push(in_flight.await);
                    }
                    if let Err(e) = copy_files(cluster, &latest, source, group, &source_files).await
                    {
                        let partial = source_files.iter().map(|f| (group, f.clone()));
                        made.extend(partial);
                        if !cluster.shared_storage() {
                            cluster.delete_garbage(&latest, made).await;
                        }
                        return Err(e);
                    }
                    made.extend(source_files.iter().map(|f| (group, f.clone())));
                    source_files.clone()
                }
            };
            followed.files.extend(
                files
                    .into_iter()
                    .map(|f| (placement.placement_id, group, f)),
            );
        }
        for (group, files) in copies {
            if !shard.placements.iter().any(|p| p.group_id == group) {
                followed.stray.extend(files.into_iter().map(|f| (group, f)));
            }
        }
    }
    // On shared storage a stray's object may be what a placement now takes.
    let taken: std::collections::HashSet<(GroupId, String)> = followed
        .files
        .iter()
        .map(|(_, group, file)| (cluster.file_home(*group), file.path.clone()))
        .collect();
    followed
        .stray
        .retain(|(group, file)| !taken.contains(&(cluster.file_home(*group), file.path.clone())));
    // Files of shards the table no longer has stay as they were: the commit refuses them.
    followed.files.append(&mut left);
    Ok(followed)
}
