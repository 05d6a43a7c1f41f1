//! Building the DataFusion session one statement runs in.
//!
//! Each statement gets a fresh `SessionContext` over one catalog snapshot, so no state leaks
//! between statements of a connection and every query reads one consistent set of files.
//! The session speaks the PostgreSQL dialect, maps text types to `Utf8` (what Flight SQL
//! clients expect), and ends its physical optimizer with the [`DistributeRule`].

use std::sync::Arc;

use datafusion::common::config::Dialect;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use shardfusion_catalog::CatalogSnapshot;

use crate::cluster::shared_state::Cluster;
use crate::error::Result;
use crate::monitoring::statement_stats::QueryCounters;
use crate::planner::{DistributeRule, PlannerOptions};
use crate::session::schema_provider::ClusterSchemaProvider;

/// The catalog and schema names statements resolve unqualified tables in.
pub const DEFAULT_CATALOG: &str = "shardfusion";
pub const DEFAULT_SCHEMA: &str = "public";

/// A session over `snapshot` whose distributed nodes add to `counters`.
pub fn session_for(
    cluster: &Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
    counters: Arc<QueryCounters>,
) -> Result<SessionContext> {
    session_in(cluster, snapshot, counters, Arc::clone(&cluster.runtime))
}

/// A session that can also reach the host's files through `file://`: only for statements whose
/// paths were checked against [`Cluster::file_access`] (server-side `COPY`).
pub fn file_session_for(
    cluster: &Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
    counters: Arc<QueryCounters>,
) -> Result<SessionContext> {
    session_in(
        cluster,
        snapshot,
        counters,
        Arc::clone(cluster.file_runtime()),
    )
}

fn session_in(
    cluster: &Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
    counters: Arc<QueryCounters>,
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
) -> Result<SessionContext> {
    let mut config = cluster
        .config
        .clone()
        .with_information_schema(true)
        .with_default_catalog_and_schema(DEFAULT_CATALOG, DEFAULT_SCHEMA)
        .with_create_default_catalog_and_schema(true);
    {
        let options = config.options_mut();
        options.sql_parser.dialect = Dialect::PostgreSQL;
        options.sql_parser.map_string_types_to_utf8view = false;
        options.execution.parquet.schema_force_view_types = false;
    }
    if config
        .options()
        .extensions
        .get::<PlannerOptions>()
        .is_none()
    {
        config = config.with_option_extension(PlannerOptions::default());
    }
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(DistributeRule::new(
            Arc::clone(&snapshot),
            Arc::clone(&cluster.workers),
            cluster.transport(),
            counters,
        )))
        .build();
    let ctx = SessionContext::new_with_state(state);
    if let Some(catalog) = ctx.catalog(DEFAULT_CATALOG) {
        catalog.register_schema(
            DEFAULT_SCHEMA,
            Arc::new(ClusterSchemaProvider::new(Arc::clone(cluster), snapshot)),
        )?;
    }
    Ok(ctx)
}
