//! [`Cluster`]: what every part of the coordinator shares — the catalog, the channels to the
//! workers, and the coordinator's own data root (which holds local tables).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionConfig;
use parking_lot::RwLock;
use shardfusion_catalog::{Catalog, CatalogSnapshot, FileMeta};
use shardfusion_common::exchange::transport::Transport;
use shardfusion_common::ids::{GroupId, PlacementId};
use shardfusion_common::storage::{DataRoot, DataRootRegistry};

use crate::cluster::worker_pool::WorkerPool;
use crate::limits::admission::Admission;
use crate::session::session_settings::SessionSettings;
use crate::statements::file_access::FileAccess;

/// Shared coordinator state.
#[derive(Debug)]
pub struct Cluster {
    pub catalog: Arc<Catalog>,
    pub workers: Arc<WorkerPool>,
    pub root: DataRoot,
    /// DataFusion runtime shared by statements. It reaches the coordinator's data root and
    /// nothing else: no `file://` store, so no statement can touch the host's files.
    pub runtime: Arc<RuntimeEnv>,
    /// The directories server-side `COPY` may use, and the runtime (with `file://`) that only
    /// statements holding a path checked against them run in.
    pub file_access: FileAccess,
    file_runtime: Arc<RuntimeEnv>,
    /// Recent statements and what they received from workers.
    pub stats: Arc<crate::monitoring::statement_stats::StatementStats>,
    /// DataFusion options every statement starts from.
    pub config: SessionConfig,
    /// Collection of garbage and orphaned shard files.
    pub orphans: crate::cluster::orphan_cleanup::OrphanCleanup,
    /// Merging small shard files in the background.
    pub compaction: crate::cluster::compaction::Compaction,
    /// Garbage files waiting for the statements that may read them to finish.
    pub retirement: crate::cluster::file_retirement::FileRetirement,
    /// The locks under which writes to tables with keys are checked and committed.
    pub unique_keys: crate::write::unique_keys::UniqueKeyLocks,
    /// Shard moves running now, the rebalancer's background job and its progress.
    pub moves: crate::cluster::shard_moves::ShardMoves,
    /// What carries tasks to the workers: the worker pool (Flight), unless an embedding
    /// process reaches its workers in process.
    transport: RwLock<Arc<dyn Transport>>,
    /// The DataFusion session statements share until the catalog changes.
    pub sessions: crate::session::session_cache::SessionCache,
    /// Logging clients in, and the principal of each request.
    pub auth: crate::auth::Authenticator,
    /// The statement slots and their queue.
    admission: RwLock<Arc<Admission>>,
    /// The settings statements run with where their session sets none (command-line flags).
    default_settings: RwLock<SessionSettings>,
    /// The sessions Flight SQL clients opened.
    pub client_sessions: crate::session::client_sessions::ClientSessions,
    /// Values reserved from sequences and not yet handed out.
    pub sequences: Arc<crate::session::sequence_functions::SequenceCache>,
    /// Column defaults planned from their SQL text.
    pub default_expressions: crate::session::column_defaults::DefaultExpressions,
}

impl Cluster {
    /// Shared state over `catalog`, reaching workers with `secret`, keeping local tables in
    /// `root`, granting server-side `COPY` the directories of `file_access`.
    pub fn try_new(
        catalog: Arc<Catalog>,
        secret: shardfusion_common::auth::ClusterSecret,
        root: DataRoot,
        config: SessionConfig,
        file_access: FileAccess,
    ) -> datafusion::error::Result<Self> {
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(DataRootRegistry::new(root.clone())))
            .build_arc()?;
        let file_runtime = RuntimeEnvBuilder::new().build_arc()?;
        file_runtime.register_object_store(&DataRoot::url(), root.store());
        let workers = Arc::new(WorkerPool::new(secret));
        let sequences = Arc::new(crate::session::sequence_functions::SequenceCache::new(
            Arc::clone(&catalog),
        ));
        Ok(Self {
            default_expressions: crate::session::column_defaults::DefaultExpressions::new(
                Arc::clone(&sequences),
            ),
            sequences,
            catalog,
            transport: RwLock::new(Arc::clone(&workers) as Arc<dyn Transport>),
            workers,
            root,
            runtime,
            file_access,
            file_runtime,
            stats: Arc::default(),
            config,
            orphans: Default::default(),
            compaction: Default::default(),
            retirement: Default::default(),
            unique_keys: Default::default(),
            moves: Default::default(),
            sessions: Default::default(),
            auth: Default::default(),
            admission: RwLock::default(),
            default_settings: Default::default(),
            client_sessions: Default::default(),
        })
    }

    /// The settings statements run with where their session sets none.
    pub fn default_settings(&self) -> SessionSettings {
        *self.default_settings.read()
    }

    /// Statements from now on run with `settings` where their session sets none.
    pub fn set_default_settings(&self, settings: SessionSettings) {
        *self.default_settings.write() = settings;
    }

    /// The statement slots and their queue.
    pub fn admission(&self) -> Arc<Admission> {
        Arc::clone(&self.admission.read())
    }

    /// Statements starting from now on share `running` slots, with `queued` more waiting
    /// (`--max-running-statements`, `--max-queued-statements`).
    pub fn set_statement_slots(&self, running: usize, queued: usize) {
        *self.admission.write() = Arc::new(Admission::new(running, queued));
    }

    /// What carries tasks to the workers.
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::clone(&self.transport.read())
    }

    /// Carries the tasks of statements planned from now on with `transport` (an embedded
    /// cluster's in-process transport).
    pub fn set_transport(&self, transport: Arc<dyn Transport>) {
        *self.transport.write() = transport;
    }

    /// The runtime for a statement that reads or writes host paths checked by
    /// [`Self::file_access`].
    pub fn file_runtime(&self) -> &Arc<RuntimeEnv> {
        &self.file_runtime
    }

    /// Whether every node keeps its shard files in one shared object store (`--storage`): a
    /// path then names the same file on every node, and shard moves copy nothing.
    pub fn shared_storage(&self) -> bool {
        self.root.shared().is_some()
    }

    /// Where the files a node group lists live: the group itself on local disks, one place
    /// for the whole cluster (the coordinator's group) on shared storage. Whether a file is
    /// still needed is decided on `(file_home(group), path)`, never on the group alone.
    pub fn file_home(&self, group: GroupId) -> GroupId {
        if self.shared_storage() {
            GroupId::COORDINATOR
        } else {
            group
        }
    }

    /// Every file the catalog lists, by [`Self::file_home`] and path.
    pub fn referenced_files<'a>(
        &self,
        snapshot: &'a CatalogSnapshot,
    ) -> HashSet<(GroupId, &'a str)> {
        snapshot
            .referenced_files()
            .into_iter()
            .map(|(group, path)| (self.file_home(group), path))
            .collect()
    }

    /// Deletes files a committed change made garbage once every statement that started
    /// before it has finished (see [`crate::cluster::file_retirement`]).
    pub fn retire_files(self: &Arc<Self>, files: Vec<(GroupId, FileMeta)>) {
        self.retirement.retire(self, files);
    }

    /// Swaps files of `table` in one catalog transaction (compaction's merge, an UPDATE's or
    /// DELETE's rewrite: [`Catalog::compact_files`]) and retires the replaced ones; returns
    /// how many were replaced. From before the swap until their retirement the replaced
    /// files count as in flight, so orphan reconciliation, which deletes what the catalog
    /// does not list, leaves them to queries still reading them.
    pub fn replace_files(
        self: &Arc<Self>,
        table: &shardfusion_catalog::TableMeta,
        replaced: &[(PlacementId, GroupId, String)],
        written: &[(PlacementId, GroupId, FileMeta)],
    ) -> Result<usize, shardfusion_catalog::CatalogError> {
        let _protected: Vec<_> = replaced
            .iter()
            .map(|(_, group, path)| self.orphans.in_flight().begin(*group, path))
            .collect();
        let _committing = self.retirement.committing();
        let old = self
            .catalog
            .compact_files(&table.name, &table.schema, replaced, written)?;
        crate::limits::commit_point::reached();
        let count = old.len();
        self.retire_files(old);
        Ok(count)
    }

    /// Deletes files that no catalog state ever referred to (a failed statement's); what a
    /// node cannot confirm stays owed in `pg_dist_cleanup` (see
    /// [`crate::cluster::orphan_cleanup`]).
    pub async fn delete_garbage(
        &self,
        _snapshot: &CatalogSnapshot,
        files: Vec<(GroupId, FileMeta)>,
    ) {
        crate::cluster::orphan_cleanup::delete_garbage(self, files).await;
    }
}
