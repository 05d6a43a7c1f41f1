//! What shard files a node holds on disk, for reconciliation against the catalog.
//!
//! The coordinator decides which files are orphans (it owns the catalog); a node only lists
//! its files with their ages, and hides the ones it is writing right now ([`ActiveWrites`]),
//! so a file in progress is never offered for deletion. Staging files of an interrupted
//! upload (`<name>.parquet#<n>`, left by a crash) are listed too: they are garbage once old.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use shardfusion_common::storage::{DataRoot, validate_shard_file_path};
use shardfusion_common::wire::ShardFileEntry;

use crate::error::ExecutorError;

/// The directory under a data root that holds shard files.
const SHARDS_DIR: &str = "shards";

/// Shard files being written on this node, by their final relative path.
#[derive(Debug, Clone, Default)]
pub struct ActiveWrites {
    paths: Arc<Mutex<HashMap<String, usize>>>,
}

/// Marks one path as being written until dropped.
#[derive(Debug)]
pub struct ActiveWrite {
    writes: ActiveWrites,
    path: String,
}

impl ActiveWrites {
    /// Marks `path` as being written until the returned guard is dropped.
    pub fn begin(&self, path: &str) -> ActiveWrite {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        *paths.entry(path.to_string()).or_default() += 1;
        ActiveWrite {
            writes: self.clone(),
            path: path.to_string(),
        }
    }

    fn contains(&self, path: &str) -> bool {
        let paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.contains_key(path)
    }
}

impl Drop for ActiveWrite {
    fn drop(&mut self) {
        let mut paths = self.writes.paths.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = paths.get_mut(&self.path) {
            *count -= 1;
            if *count == 0 {
                paths.remove(&self.path);
            }
        }
    }
}

/// The final name a shard file on disk will have (staging files carry a `#<n>` suffix).
fn final_name(path: &str) -> &str {
    path.split_once('#').map_or(path, |(name, _)| name)
}

/// Deletes the file at `path` under `root`: a data file, or the staging file of one
/// (`<name>#<digits>`, as reconciliation lists them). A file already gone counts as deleted.
pub async fn delete_shard_file(root: &DataRoot, path: &str) -> Result<(), ExecutorError> {
    let fail = |reason: String| ExecutorError::Write {
        path: path.to_string(),
        reason,
    };
    match path.split_once('#') {
        None => {
            let store_path = validate_shard_file_path(path)?;
            match root.store().delete(&store_path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(fail(e.to_string())),
            }
        }
        Some((name, suffix)) => {
            // The object store does not address staging files; check the name part as any
            // path, and the suffix as the digits the object store appends.
            validate_shard_file_path(name)?;
            if suffix.is_empty() || !suffix.chars().all(|c| c.is_ascii_digit()) {
                return Err(shardfusion_common::storage::StorageError::PathOutsideRoot {
                    path: path.to_string(),
                }
                .into());
            }
            match tokio::fs::remove_file(root.dir().join(path)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(fail(e.to_string())),
            }
        }
    }
}

fn is_shard_file(name: &str) -> bool {
    final_name(name).ends_with(".parquet")
}

/// Every shard file under `root` that is not being written, with its age. In shared object
/// storage that is every node's files: the coordinator reconciles them once for the cluster.
pub async fn list_shard_files(
    root: &DataRoot,
    active: &ActiveWrites,
) -> std::io::Result<Vec<ShardFileEntry>> {
    if root.shared().is_some() {
        let mut files = list_stored_files(root).await?;
        files.retain(|f| !active.contains(&f.path));
        return Ok(files);
    }
    let dir = root.dir().to_path_buf();
    let active = active.clone();
    tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        walk(&dir, &dir.join(SHARDS_DIR), &mut files)?;
        files.retain(|f| !active.contains(final_name(&f.path)));
        Ok(files)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The shard files of a shared store, with their ages.
async fn list_stored_files(root: &DataRoot) -> std::io::Result<Vec<ShardFileEntry>> {
    let now = chrono::Utc::now();
    let prefix = object_store::path::Path::from(SHARDS_DIR);
    let mut listing = root.store().list(Some(&prefix));
    let mut files = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(std::io::Error::other)?;
        let path = meta.location.to_string();
        if !is_shard_file(&path) {
            continue;
        }
        let age = (now - meta.last_modified).num_milliseconds();
        files.push(ShardFileEntry {
            path,
            age_ms: u64::try_from(age).unwrap_or(0),
        });
    }
    Ok(files)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ShardFileEntry>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        let path = entry.path();
        if file_type.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        let name = entry.file_name();
        if !file_type.is_file() || !is_shard_file(&name.to_string_lossy()) {
            continue;
        }
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let relative: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let modified = entry.metadata()?.modified()?;
        let age = now.duration_since(modified).unwrap_or_default();
        out.push(ShardFileEntry {
            path: relative.join("/"),
            age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_shard_and_staging_files_but_not_active_writes() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = DataRoot::open(dir.path()).map_err(std::io::Error::other)?;
        let shard = dir.path().join("shards/t1/s2");
        std::fs::create_dir_all(&shard)?;
        for name in ["a.parquet", "b.parquet#3", "c.parquet", "notes.txt"] {
            std::fs::write(shard.join(name), b"x")?;
        }
        std::fs::write(dir.path().join("worker_id"), b"x")?;
        let active = ActiveWrites::default();
        let _writing = active.begin("shards/t1/s2/c.parquet");
        let mut paths: Vec<String> = list_shard_files(&root, &active)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            ["shards/t1/s2/a.parquet", "shards/t1/s2/b.parquet#3"]
        );
        drop(_writing);
        assert_eq!(list_shard_files(&root, &active).await?.len(), 3);
        Ok(())
    }
}
