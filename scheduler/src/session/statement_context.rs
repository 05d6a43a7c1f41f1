//! Building the DataFusion session statements run in.
//!
//! A session reads one catalog snapshot, so every query reads one consistent set of files.
//! Queries share one per snapshot ([`crate::session::session_cache`]); statements that reach
//! the host's files get a fresh one with `file://` ([`file_session_for`]). The session speaks
//! the PostgreSQL dialect, maps text types to `Utf8` (what Flight SQL clients expect), and
//! ends its physical optimizer with the [`DistributeRule`].

use std::sync::Arc;

use datafusion::common::config::Dialect;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionContext;
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_common::exchange::transport::Transport;

use crate::cluster::shared_state::Cluster;
use crate::error::Result;
use crate::planner::{DistributeRule, PlannerOptions};
use crate::session::schema_provider::ClusterSchemaProvider;

/// The catalog and schema names statements resolve unqualified tables in.
pub const DEFAULT_CATALOG: &str = "shardfusion";
pub const DEFAULT_SCHEMA: &str = "public";

/// A session of its own over `snapshot`.
pub fn session_for(
    cluster: &Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
) -> Result<SessionContext> {
    let state = state_in(
        cluster,
        snapshot,
        Arc::clone(&cluster.runtime),
        cluster.transport(),
    )?;
    Ok(SessionContext::new_with_state(state))
}

/// The state of a session shared by the statements planned against `snapshot`, carrying
/// their tasks with `transport`.
pub fn shared_state_for(
    cluster: &Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
    transport: Arc<dyn Transport>,
) -> Result<SessionState> {
    state_in(cluster, snapshot, Arc::clone(&cluster.runtime), transport)
}

/// A session that can also reach the host's files through `file://`: only for statements whose
/// paths were checked against [`Cluster::file_access`] (server-side `COPY`).
pub fn file_session_for(
    cluster: &Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
) -> Result<SessionContext> {
    let state = state_in(
        cluster,
        snapshot,
        Arc::clone(cluster.file_runtime()),
        cluster.transport(),
    )?;
    Ok(SessionContext::new_with_state(state))
}

fn state_in(
    cluster: &Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    transport: Arc<dyn Transport>,
) -> Result<SessionState> {
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
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(DistributeRule::new(
            Arc::clone(&snapshot),
            Arc::clone(&cluster.workers),
            transport,
        )))
        .build();
    crate::session::citus_table_functions::register(&mut state, cluster);
    crate::session::sequence_functions::register(&mut state, &cluster.sequences)?;
    shardfusion_common::json_functions::register(&mut state)?;
    if let Some(catalog) = state.catalog_list().catalog(DEFAULT_CATALOG) {
        catalog.register_schema(
            DEFAULT_SCHEMA,
            Arc::new(ClusterSchemaProvider::new(Arc::clone(cluster), snapshot)),
        )?;
    }
    Ok(state)
}
