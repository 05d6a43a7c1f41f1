//! [`Cluster`]: what every part of the coordinator shares — the catalog, the channels to the
//! workers, and the coordinator's own data root (which holds local tables).

use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionConfig;
use shardfusion_catalog::{Catalog, CatalogSnapshot, FileMeta};
use shardfusion_common::ids::GroupId;
use shardfusion_common::storage::{DataRoot, validate_relative_path};

use crate::worker_pool::WorkerPool;

/// Shared coordinator state.
#[derive(Debug)]
pub struct Cluster {
    pub catalog: Arc<Catalog>,
    pub workers: Arc<WorkerPool>,
    pub root: DataRoot,
    /// DataFusion runtime with the coordinator's data root registered, shared by statements.
    pub runtime: Arc<RuntimeEnv>,
    /// Recent statements and what they received from workers.
    pub stats: Arc<crate::statement_stats::StatementStats>,
    /// DataFusion options every statement starts from.
    pub config: SessionConfig,
}

impl Cluster {
    /// Shared state over `catalog`, reaching workers with `secret`, keeping local tables in
    /// `root`.
    pub fn try_new(
        catalog: Arc<Catalog>,
        secret: shardfusion_common::auth::ClusterSecret,
        root: DataRoot,
        config: SessionConfig,
    ) -> datafusion::error::Result<Self> {
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new().build_arc()?;
        runtime.register_object_store(&DataRoot::url(), root.store());
        Ok(Self {
            catalog,
            workers: Arc::new(WorkerPool::new(secret)),
            root,
            runtime,
            stats: Arc::default(),
            config,
        })
    }

    /// Deletes files that no committed catalog state refers to any more.
    pub async fn delete_garbage(
        &self,
        snapshot: &CatalogSnapshot,
        files: Vec<(GroupId, FileMeta)>,
    ) {
        let mut by_group: std::collections::BTreeMap<GroupId, Vec<String>> = Default::default();
        for (group, file) in files {
            by_group.entry(group).or_default().push(file.path);
        }
        for (group, paths) in by_group {
            if group == GroupId::COORDINATOR {
                let store = self.root.store();
                for path in paths {
                    if let Ok(path) = validate_relative_path(&path) {
                        use object_store::ObjectStoreExt;
                        let _ = store.delete(&path).await;
                    }
                }
            } else if let Some(node) = snapshot.node_of_group(group) {
                self.workers.delete_files(&node.url(), paths).await;
            }
        }
    }
}
