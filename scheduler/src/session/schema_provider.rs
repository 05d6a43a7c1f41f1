//! [`ClusterSchemaProvider`]: the `public` schema a statement sees — every catalog table and
//! view plus the Citus metadata relations — frozen at one catalog snapshot. A view is its
//! query, planned over the same snapshot when the statement names it (DataFusion's
//! `ViewTable`), so the planner distributes it with the rest of the statement.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{Result, plan_err};
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_catalog::metadata_tables::{MetadataTable, MetadataTableProvider};

use crate::cluster::shared_state::Cluster;
use crate::monitoring::statement_activity::{STAT_ACTIVITY, StatementActivity};
use crate::monitoring::statement_stats::{STAT_STATEMENTS, StatementStats};
use crate::session::table_provider::ShardedTableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::datasource::MemTable;

#[derive(Debug)]
pub struct ClusterSchemaProvider {
    cluster: Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
}

tokio::task_local! {
    /// How many views deep the view being planned is.
    static VIEW_DEPTH: usize;
}

/// Views planned inside views beyond this depth are refused (a view that names itself
/// through others).
const MAX_VIEW_DEPTH: usize = 32;

impl ClusterSchemaProvider {
    pub fn new(cluster: Arc<Cluster>, snapshot: Arc<CatalogSnapshot>) -> Self {
        Self { cluster, snapshot }
    }

    /// View `name` (`definition`, its query) planned over this snapshot.
    async fn view(&self, name: &str, definition: &str) -> Result<Arc<dyn TableProvider>> {
        let depth = VIEW_DEPTH.try_with(|d| *d).unwrap_or(0);
        if depth >= MAX_VIEW_DEPTH {
            return plan_err!(
                "view \"{name}\" nests views more than {MAX_VIEW_DEPTH} deep: does it refer to \
                 itself through other views?"
            );
        }
        let ctx = crate::session::statement_context::session_for(
            &self.cluster,
            Arc::clone(&self.snapshot),
        )
        .map_err(datafusion::error::DataFusionError::from)?;
        let plan = VIEW_DEPTH
            .scope(depth + 1, ctx.state().create_logical_plan(definition))
            .await?;
        Ok(Arc::new(ViewTable::new(plan, Some(definition.to_string()))))
    }
}

#[async_trait]
impl SchemaProvider for ClusterSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.snapshot.tables.keys().cloned().collect();
        names.extend(self.snapshot.views.keys().cloned());
        names.extend(MetadataTable::ALL.iter().map(|t| t.name().to_string()));
        names.push(STAT_STATEMENTS.to_string());
        names.push(STAT_ACTIVITY.to_string());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.snapshot.table(name) {
            return Ok(Some(Arc::new(ShardedTableProvider::new(
                Arc::clone(&self.cluster),
                Arc::clone(&self.snapshot),
                Arc::clone(table),
            ))));
        }
        if let Some(definition) = self.snapshot.views.get(name) {
            return Ok(Some(self.view(name, definition).await?));
        }
        if name == STAT_STATEMENTS {
            let batch = self.cluster.stats.batch()?;
            let table = MemTable::try_new(StatementStats::schema(), vec![vec![batch]])?;
            return Ok(Some(Arc::new(table)));
        }
        if name == STAT_ACTIVITY {
            let batch = self.cluster.stats.activity().batch()?;
            let table = MemTable::try_new(StatementActivity::schema(), vec![vec![batch]])?;
            return Ok(Some(Arc::new(table)));
        }
        if let Some(meta) = MetadataTable::from_name(name) {
            return Ok(Some(Arc::new(MetadataTableProvider::new(
                meta,
                Arc::clone(&self.snapshot),
            ))));
        }
        Ok(None)
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        plan_err!(
            "cannot create \"{name}\" this way: external tables are not supported; \
             use CREATE TABLE and load it with INSERT or COPY"
        )
    }

    fn table_exist(&self, name: &str) -> bool {
        self.snapshot.table(name).is_some()
            || self.snapshot.views.contains_key(name)
            || MetadataTable::from_name(name).is_some()
            || name == STAT_STATEMENTS
            || name == STAT_ACTIVITY
    }
}
