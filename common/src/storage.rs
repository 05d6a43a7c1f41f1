//! A node's data root: the one directory whose files it may read and write, and the store
//! its shard files live in.
//!
//! Shard files are addressed by paths relative to the root (`shards/t7/s102008/<id>.parquet`)
//! and served to DataFusion through an object store registered under [`DATA_STORE_URL`]: the
//! data directory itself by default, or a shared S3-compatible store
//! ([`crate::object_storage`]) that every node of the cluster sees alike.
//! Every path that arrives from elsewhere goes through [`validate_relative_path`] first, so a
//! plan fragment can never name a file outside the root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::object_store::{ObjectStoreRegistry, ObjectStoreUrl};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use url::Url;

use crate::ids::{ShardId, TableId};
use crate::object_storage::{ObjectStorageError, StorageUrl};

/// The object store URL under which a node's data root is registered with DataFusion.
pub const DATA_STORE_URL: &str = "shardfusion-data://local/";

/// Errors about the data root and the paths inside it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot use data directory {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the object store at {dir}: {source}")]
    Store {
        dir: PathBuf,
        source: object_store::Error,
    },
    #[error(transparent)]
    Shared(#[from] ObjectStorageError),
    #[error(
        "refusing path {path:?}: only relative paths inside the node's data directory may be used"
    )]
    PathOutsideRoot { path: String },
    #[error(
        "refusing path {path:?}: requests may name shard files only \
         (shards/t<table>/s<shard>/<name>.parquet)"
    )]
    NotAShardFile { path: String },
}

impl StorageError {
    /// Whether this is a refused path (the request's fault, and a permission matter), not a
    /// storage failure.
    pub fn is_refused_path(&self) -> bool {
        matches!(
            self,
            Self::PathOutsideRoot { .. } | Self::NotAShardFile { .. }
        )
    }
}

/// A node's data directory and the object store its shard files live in.
#[derive(Debug, Clone)]
pub struct DataRoot {
    dir: PathBuf,
    store: Arc<dyn ObjectStore>,
    shared: Option<StorageUrl>,
}

impl DataRoot {
    /// Opens (creating if needed) the data root at `dir`, with shard files in `dir` too.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(dir, None)
    }

    /// Opens the data root at `dir`, with shard files in the shared store `shared` when given
    /// (the directory then keeps only the node's own state), else in `dir`.
    pub fn open_with(
        dir: impl AsRef<Path>,
        shared: Option<&StorageUrl>,
    ) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| StorageError::DataDir {
            dir: dir.clone(),
            source,
        })?;
        let given = dir.clone();
        let dir = dir.canonicalize().map_err(|source| StorageError::DataDir {
            dir: dir.clone(),
            source,
        })?;
        // Errors name files by absolute path; clients must see them relative to the root.
        crate::path_redaction::register_data_dir(&given);
        crate::path_redaction::register_data_dir(&dir);
        let store: Arc<dyn ObjectStore> = match shared {
            Some(url) => url.open()?,
            None => Arc::new(LocalFileSystem::new_with_prefix(&dir).map_err(|source| {
                StorageError::Store {
                    dir: dir.clone(),
                    source,
                }
            })?),
        };
        Ok(Self {
            dir,
            store,
            shared: shared.cloned(),
        })
    }

    /// The shared store the shard files live in, if not the data directory.
    pub fn shared(&self) -> Option<&StorageUrl> {
        self.shared.as_ref()
    }

    /// Where shard files live, as shown to people: the storage URL, or `local`.
    pub fn storage_label(&self) -> String {
        self.shared
            .as_ref()
            .map_or_else(|| "local".to_string(), ToString::to_string)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The URL this root is registered under in a DataFusion runtime.
    pub fn object_store_url() -> ObjectStoreUrl {
        ObjectStoreUrl::parse(DATA_STORE_URL).expect("constant URL is valid")
    }

    pub fn url() -> Url {
        Url::parse(DATA_STORE_URL).expect("constant URL is valid")
    }
}

/// The path of a new shard file, relative to the data root.
pub fn shard_file_path(table: TableId, shard: ShardId, write_id: &str) -> String {
    format!("shards/t{table}/s{shard}/{write_id}.parquet")
}

/// Checks that `path` is a plain relative path inside the data root and converts it.
pub fn validate_relative_path(path: &str) -> Result<StorePath, StorageError> {
    let refuse = || StorageError::PathOutsideRoot {
        path: path.to_string(),
    };
    if path.is_empty() || path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Err(refuse());
    }
    for segment in path.split('/') {
        let ok = !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(refuse());
        }
    }
    StorePath::parse(path).map_err(|_| refuse())
}

/// Checks that `path` names a shard file, `shards/t<table>/s<shard>/<name>.parquet` (as
/// [`shard_file_path`] makes them), and converts it. Fragments, writes, analysis and deletions
/// touch shard files only: nothing else under a node's data root (its identity file, its
/// catalog) can be named by a request.
pub fn validate_shard_file_path(path: &str) -> Result<StorePath, StorageError> {
    let store_path = validate_relative_path(path)?;
    let numbered = |segment: &str, prefix: char| {
        segment
            .strip_prefix(prefix)
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
    };
    let segments: Vec<&str> = path.split('/').collect();
    let is_shard_file = matches!(
        segments.as_slice(),
        ["shards", table, shard, name]
            if numbered(table, 't')
                && numbered(shard, 's')
                && name.len() > ".parquet".len()
                && name.ends_with(".parquet")
    );
    if !is_shard_file {
        return Err(StorageError::NotAShardFile {
            path: path.to_string(),
        });
    }
    Ok(store_path)
}

/// An object store registry that knows only one data root, so that fragments run on a worker
/// cannot reach `file://` or any other store.
#[derive(Debug)]
pub struct DataRootRegistry {
    root: DataRoot,
}

impl DataRootRegistry {
    pub fn new(root: DataRoot) -> Self {
        Self { root }
    }
}

impl ObjectStoreRegistry for DataRootRegistry {
    fn register_store(
        &self,
        _url: &Url,
        _store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        None
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        let expected = DataRoot::url();
        if url.scheme() == expected.scheme() && url.host_str() == expected.host_str() {
            Ok(self.root.store())
        } else {
            Err(DataFusionError::Plan(format!(
                "object store {url} is not available: ShardFusion nodes read and write only \
                 their own data directory (server-side COPY uses the directories granted with \
                 --allow-file-access)"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_only() {
        assert!(validate_relative_path("shards/t1/s2/a-b_c.parquet").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "shards/../../x",
            "a//b",
            "./a",
            "file:///x",
            "a\\b",
        ] {
            assert!(validate_relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shard_files_only() {
        assert!(validate_shard_file_path("shards/t1/s102008/a-b_c.parquet").is_ok());
        for bad in [
            "/etc/passwd",
            "../../etc/passwd",
            "worker_id",
            "catalog.db",
            "shards/t1/s2",
            "shards/t1/s2/x.csv",
            "shards/tx/s2/a.parquet",
            "shards/t1/s2/.parquet",
            "shards/t1/s2/sub/a.parquet",
            "other/t1/s2/a.parquet",
        ] {
            assert!(validate_shard_file_path(bad).is_err(), "{bad}");
        }
    }
}
