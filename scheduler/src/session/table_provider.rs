//! [`ShardedTableProvider`]: every catalog table (distributed, reference or local) as a
//! DataFusion table, bound to one catalog snapshot.
//!
//! `scan` returns a [`ShardScanExec`] over the committed files of one placement per shard,
//! with shards pruned by equality or `IN` filters on the distribution column, and files
//! pruned by their min/max statistics on any filtered column
//! (`shardfusion_common::column_stats::pruning`). The
//! `DistributeRule` later decides which part of the plan above it runs on the workers; a local
//! table's scan (group 0) simply runs on the coordinator.
//!
//! `insert_into` returns a `DataSinkExec` over [`ShardedTableSink`], so `INSERT ... VALUES`
//! and `INSERT ... SELECT` go through DataFusion's own planning, casts and checks.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, Result, ScalarValue, not_impl_err};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use shardfusion_catalog::{CatalogSnapshot, PlacementMeta, TableKind, TableMeta};
use shardfusion_common::column_stats::pruning::prune_files;
use shardfusion_common::hashing::hash_scalar;
use shardfusion_common::ids::{GroupId, NodeId};
use shardfusion_common::shard_scan::{FileRef, ShardFiles, ShardScanExec};

use crate::cluster::shared_state::Cluster;
use crate::write::table_writer::TableWriter;

/// A catalog table as seen by one statement.
#[derive(Debug)]
pub struct ShardedTableProvider {
    cluster: Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
    table: Arc<TableMeta>,
    /// The defaults of its columns that have one, which `INSERT` fills left-out columns with;
    /// planned on the first ask (a query never asks).
    defaults: OnceLock<HashMap<String, Expr>>,
}

impl ShardedTableProvider {
    pub fn new(
        cluster: Arc<Cluster>,
        snapshot: Arc<CatalogSnapshot>,
        table: Arc<TableMeta>,
    ) -> Self {
        Self {
            cluster,
            snapshot,
            table,
            defaults: OnceLock::new(),
        }
    }

    fn defaults(&self) -> &HashMap<String, Expr> {
        self.defaults.get_or_init(|| {
            let mut defaults = HashMap::new();
            for default in &self.table.defaults {
                // Planned once already, when CREATE TABLE checked it.
                match self.cluster.default_expressions.plan(&default.expression) {
                    Ok(expr) => {
                        defaults.insert(default.column.clone(), expr);
                    }
                    Err(e) => tracing::error!(
                        table = %self.table.name, column = %default.column, error = %e,
                        "a recorded column default does not plan"
                    ),
                }
            }
            defaults
        })
    }

    /// What the statement's tables are: the router looks at their kinds and colocation.
    pub fn table(&self) -> &TableMeta {
        &self.table
    }

    /// Shard indexes that can hold rows matching `filters`; `None` means all.
    pub(crate) fn prune(&self, filters: &[Expr]) -> Option<BTreeSet<usize>> {
        let (_, column, data_type) = self.table.distribution_column()?;
        let ranges = self.table.shard_ranges()?;
        let mut result: Option<BTreeSet<usize>> = None;
        for filter in filters {
            let Some(values) = equality_values(filter, column, data_type) else {
                continue;
            };
            let mut shards = BTreeSet::new();
            for value in values {
                match hash_scalar(&value, data_type) {
                    Ok(hash) => {
                        shards.insert(ranges.index_of(hash)?);
                    }
                    // NULL never matches `=`; unconvertible values cannot be pruned safely.
                    Err(_) if value.is_null() => {}
                    Err(_) => return None,
                }
            }
            result = Some(match result {
                Some(prev) => prev.intersection(&shards).copied().collect(),
                None => shards,
            });
        }
        result
    }

    /// The files to read of each shard (in `keep`), from one placement on an active node; a
    /// shard with none (its node is disabled) fails the scan with `Unavailable`, naming it.
    fn shard_files(
        &self,
        keep: Option<&BTreeSet<usize>>,
    ) -> datafusion::error::Result<Vec<ShardFiles>> {
        let mut out = Vec::new();
        for (i, shard) in self.table.shards.iter().enumerate() {
            if keep.is_some_and(|k| !k.contains(&i)) {
                continue;
            }
            // Read the first placement on an active node (for reference tables, the other
            // copies are listed as replicas so fragments can read their local one).
            let candidates: Vec<_> = shard
                .placements
                .iter()
                .filter(|p| {
                    p.group_id == GroupId::COORDINATOR
                        || self
                            .snapshot
                            .node_of_group(p.group_id)
                            .is_some_and(|n| n.is_active)
                })
                .collect();
            let Some(placement) = candidates.first() else {
                let nodes: Vec<String> = shard
                    .placements
                    .iter()
                    .filter_map(|p| self.snapshot.node_of_group(p.group_id))
                    .map(|n| format!("{}:{}", n.node_name, n.node_port))
                    .collect();
                return Err(shardfusion_common::status::from_status(
                    tonic::Status::unavailable(format!(
                        "shard {} of {} has no placement on an active node (placed on {}): \
                         activate the node with citus_activate_node, or move the shard",
                        shard.shard_id,
                        self.table.name,
                        if nodes.is_empty() {
                            "no node".to_string()
                        } else {
                            nodes.join(", ")
                        }
                    )),
                ));
            };
            let node_id = if placement.group_id == GroupId::COORDINATOR {
                NodeId(0)
            } else {
                self.snapshot
                    .node_of_group(placement.group_id)
                    .map_or(NodeId(0), |n| n.node_id)
            };
            out.push(ShardFiles {
                shard_id: shard.shard_id,
                node_id,
                files: file_refs(placement),
            });
        }
        Ok(out)
    }
}

impl ShardedTableProvider {
    /// Every active placement of a reference table's shard, with its files.
    fn replicas(&self) -> Vec<ShardFiles> {
        let Some(shard) = self.table.shards.first() else {
            return Vec::new();
        };
        shard
            .placements
            .iter()
            .filter_map(|p| {
                let node = self
                    .snapshot
                    .node_of_group(p.group_id)
                    .filter(|n| n.is_active)?;
                Some(ShardFiles {
                    shard_id: shard.shard_id,
                    node_id: node.node_id,
                    files: file_refs(p),
                })
            })
            .collect()
    }
}

/// The committed files of a placement, as a scan names them.
pub(crate) fn file_refs(placement: &PlacementMeta) -> Vec<FileRef> {
    placement
        .files
        .iter()
        .map(|f| FileRef {
            path: f.path.clone(),
            byte_size: f.byte_size,
            row_count: f.row_count,
            stats: f.stats.clone(),
        })
        .collect()
}

/// The literal values `filter` restricts `column` (of `data_type`) to (`column = v`,
/// `v = column`, `column IN (..)`), if it is such a filter. The column may be cast only where
/// equal cast values mean equal stored values (an integer to another integer type, or to its
/// own type): `CAST(code AS INT) = 5` holds for the text '5', '05' and '+5', which hash apart.
fn equality_values(filter: &Expr, column: &str, data_type: &DataType) -> Option<Vec<ScalarValue>> {
    let is_column = |e: &Expr| column_through_exact_cast(e, column, data_type);
    let literal = |e: &Expr| match strip_cast(e) {
        Expr::Literal(v, _) => Some(v.clone()),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if is_column(left) {
                literal(right).map(|v| vec![v])
            } else if is_column(right) {
                literal(left).map(|v| vec![v])
            } else {
                None
            }
        }
        Expr::InList(list) if !list.negated && is_column(&list.expr) => {
            list.list.iter().map(literal).collect()
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut l = equality_values(left, column, data_type)?;
            l.extend(equality_values(right, column, data_type)?);
            Some(l)
        }
        _ => None,
    }
}

/// Subqueries are evaluated on the coordinator; a filter holding one cannot go to a worker.
fn has_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
        ))
    })
    .unwrap_or(true)
}

/// Whether `expr` is `column`, possibly cast to a type whose equal values come from equal
/// stored values only.
fn column_through_exact_cast(expr: &Expr, column: &str, data_type: &DataType) -> bool {
    let (inner, target) = match expr {
        Expr::Column(c) => return c.name == column,
        Expr::Cast(c) => (c.expr.as_ref(), c.field.data_type()),
        Expr::TryCast(c) => (c.expr.as_ref(), c.field.data_type()),
        _ => return false,
    };
    let exact = target == data_type || (target.is_integer() && data_type.is_integer());
    exact && column_through_exact_cast(inner, column, data_type)
}

fn strip_cast(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast(c) => strip_cast(&c.expr),
        Expr::TryCast(c) => strip_cast(&c.expr),
        other => other,
    }
}

#[async_trait]
impl TableProvider for ShardedTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.table.schema)
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults().get(column)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if has_subquery(f) {
                    TableProviderFilterPushDown::Unsupported
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let keep = self.prune(filters);
        let mut shards = self.shard_files(keep.as_ref())?;
        let mut replicas = match self.table.kind {
            TableKind::Reference { .. } => self.replicas(),
            _ => Vec::new(),
        };
        let shippable = filters.iter().filter(|f| !has_subquery(f)).cloned();
        let predicate = match conjunction(shippable) {
            Some(expr) => {
                let df_schema = DFSchema::try_from(self.table.schema.as_ref().clone())?;
                Some(state.create_physical_expr(expr, &df_schema)?)
            }
            None => None,
        };
        // Files whose min/max exclude the filters are not listed at all.
        let pruned_files = match &predicate {
            Some(predicate) => {
                // Each worker reads its own copy of a reference table: prune those alike.
                prune_files(predicate, &self.table.schema, &mut replicas);
                prune_files(predicate, &self.table.schema, &mut shards)
            }
            None => 0,
        };
        let scan = ShardScanExec::try_new(
            self.table.name.clone(),
            Arc::clone(&self.table.schema),
            projection.cloned(),
            predicate,
            limit,
            shards,
        )?
        .with_distribution_column(self.table.distribution_column().map(|(i, _, _)| i))
        .with_replicas(replicas)
        .with_pruned_files(pruned_files);
        Ok(Arc::new(scan))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!("{insert_op} is not supported; use TRUNCATE then INSERT");
        }
        // Taken now, as the transaction below.
        let returning = crate::statements::insert_returning::capture();
        let sink = ShardedTableSink {
            // Taken now: the plan may run on other tasks (EXPLAIN ANALYZE), which do not see
            // the statement's task-local transaction.
            transaction: crate::session::transaction::current(),
            returning,
            cluster: Arc::clone(&self.cluster),
            snapshot: Arc::clone(&self.snapshot),
            // The table writer checks NOT NULL, naming the column (see `not_null`).
            schema: crate::write::not_null::nullable(&self.table.schema),
            table: Arc::clone(&self.table),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// Writes an INSERT's rows into the table's shards and commits them as one unit.
#[derive(Debug)]
pub struct ShardedTableSink {
    /// The transaction the INSERT takes part in, whose COMMIT commits its files.
    transaction: Option<Arc<crate::session::transaction::Transaction>>,
    /// Where the rows go for the statement's `RETURNING`, if it has one.
    returning: Option<Arc<crate::statements::insert_returning::WrittenRows>>,
    cluster: Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
    /// The table's columns, all nullable: what `DataSinkExec` checks its input against.
    schema: SchemaRef,
    table: Arc<TableMeta>,
}

impl DisplayAs for ShardedTableSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.table.kind {
            TableKind::Local => "local",
            TableKind::Distributed { .. } => "distributed",
            TableKind::Reference { .. } => "reference",
        };
        write!(
            f,
            "ShardedTableSink: table={} ({kind}, {} shards)",
            self.table.name,
            self.table.shards.len()
        )
    }
}

#[async_trait]
impl DataSink for ShardedTableSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let writer = TableWriter::for_table(
            Arc::clone(&self.cluster),
            Arc::clone(&self.snapshot),
            &self.table,
        )?;
        let returning = self.returning.as_deref();
        let written = (writer.write_all(data, |batch: RecordBatch| {
            if let Some(returning) = returning {
                returning.keep(&batch);
            }
            Ok::<RecordBatch, _>(batch)
        }))
        .await?;
        // RETURNING fails the statement before its rows are committed (they are deleted).
        if let Some(returning) = returning {
            returning.evaluate().await?;
        }
        let commit = written.commit(&self.cluster, &self.snapshot, &self.table.name);
        Ok(crate::session::transaction::within(self.transaction.clone(), commit).await?)
    }
}
