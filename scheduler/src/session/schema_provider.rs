//! [`ClusterSchemaProvider`]: the `public` schema a statement sees — every catalog table plus
//! the Citus metadata relations — frozen at one catalog snapshot.

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
use datafusion::datasource::MemTable;

#[derive(Debug)]
pub struct ClusterSchemaProvider {
    cluster: Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
}

impl ClusterSchemaProvider {
    pub fn new(cluster: Arc<Cluster>, snapshot: Arc<CatalogSnapshot>) -> Self {
        Self { cluster, snapshot }
    }
}

#[async_trait]
impl SchemaProvider for ClusterSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.snapshot.tables.keys().cloned().collect();
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
            "cannot create \"{name}\" this way: views and external tables are not supported yet; \
             use CREATE TABLE and load it with INSERT or COPY"
        )
    }

    fn table_exist(&self, name: &str) -> bool {
        self.snapshot.table(name).is_some()
            || MetadataTable::from_name(name).is_some()
            || name == STAT_STATEMENTS
            || name == STAT_ACTIVITY
    }
}
