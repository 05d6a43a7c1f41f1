//! Comparing the shard files on the nodes' disks with the files the catalog lists.

use std::path::{Path, PathBuf};

use shardfusion_scheduler::Coordinator;

/// Every shard file (and staging file of one) under `dir`, recursively.
pub fn on_disk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().contains(".parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The shard files under a cluster's data directory, as paths relative to the data root of
/// the node holding them (`shards/t7/s102008/<id>.parquet`), sorted.
pub fn cluster_files_on_disk(data_dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = on_disk(data_dir)
        .into_iter()
        .filter_map(|path| {
            let text = path.to_string_lossy().into_owned();
            text.find("/shards/").map(|at| text[at + 1..].to_string())
        })
        .collect();
    files.sort();
    files
}

/// Every file the catalog lists, on any node, sorted.
pub fn cluster_files_in_catalog(coordinator: &Coordinator) -> Vec<String> {
    let snapshot = coordinator.cluster().catalog.snapshot();
    let mut files: Vec<String> = snapshot
        .tables
        .values()
        .flat_map(|t| t.shards.iter())
        .flat_map(|s| s.placements.iter())
        .flat_map(|p| p.files.iter().map(|f| f.path.clone()))
        .collect();
    files.sort();
    files
}

/// Waits (up to `limit`) until the cluster's disks hold exactly the files its catalog lists;
/// returns both lists (equal, unless the time ran out).
pub async fn settle(
    cluster: &crate::TestCluster,
    limit: std::time::Duration,
) -> (Vec<String>, Vec<String>) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let on_disk = cluster_files_on_disk(cluster.data_dir());
        let in_catalog = cluster_files_in_catalog(cluster.coordinator());
        if on_disk == in_catalog || tokio::time::Instant::now() > deadline {
            return (on_disk, in_catalog);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Asserts that within 20 seconds the cluster's disks hold exactly the files its catalog
/// lists: nothing a statement, transaction or failure wrote was left behind.
pub async fn assert_no_stray_files(cluster: &crate::TestCluster) {
    let (on_disk, in_catalog) = settle(cluster, std::time::Duration::from_secs(20)).await;
    assert_eq!(on_disk, in_catalog, "files left behind on disk");
}
