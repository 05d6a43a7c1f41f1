//! [`ShardScanExec`]: the leaf of every distributed plan fragment.
//!
//! It names a table's shards and, for each shard, the committed Parquet files of the placement
//! chosen to read it. It has one output partition per shard, so a worker holding several
//! shards scans them in parallel. On execution it resolves the files against the node's data
//! root (registered as [`crate::storage::DATA_STORE_URL`]) and reads them with DataFusion's
//! Parquet reader, pushing down projection, predicate and limit.
//!
//! Invariants:
//! - file paths are relative to the data root and pass
//!   [`crate::storage::validate_shard_file_path`] before anything is read;
//! - its output partitioning is `UnknownPartitioning`: shards are split by xxh3, which is
//!   *not* DataFusion's hash partitioning, and must never be declared as such.

use std::fmt;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics, exec_err, internal_err};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::EmptyRecordBatchStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, StatisticsArgs,
};

use crate::column_stats::FileStats;
use crate::column_stats::scan_statistics::files_statistics;
use crate::ids::{NodeId, ShardId};
use crate::storage::{DataRoot, validate_shard_file_path};

/// One committed Parquet file of a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// Relative to the data root of the node holding the placement.
    pub path: String,
    pub byte_size: u64,
    /// Rows in the file, from the catalog; used for planning estimates only.
    pub row_count: u64,
    /// The file's column statistics, from the catalog; `None` when unknown. Used for
    /// planning (statistics, file pruning) on the coordinator only: fragments sent to
    /// workers do not carry them.
    pub stats: Option<Arc<FileStats>>,
}

/// The files to read for one shard, and the node that holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardFiles {
    pub shard_id: ShardId,
    /// The node whose placement is read. Only the coordinator looks at it.
    pub node_id: NodeId,
    pub files: Vec<FileRef>,
}

/// Scans the committed files of a set of shards of one table; one partition per shard.
#[derive(Debug, Clone)]
pub struct ShardScanExec {
    table_name: String,
    table_schema: SchemaRef,
    projection: Option<Vec<usize>>,
    predicate: Option<Arc<dyn PhysicalExpr>>,
    limit: Option<usize>,
    shards: Vec<ShardFiles>,
    /// Index in the table schema of the distribution column, for distributed tables.
    distribution_column: Option<usize>,
    /// For a reference table, one entry per placement (each worker's own copy). The scan reads
    /// `shards` only; the coordinator uses this to point each worker at its local copy. It
    /// never crosses the wire.
    replicas: Vec<ShardFiles>,
    /// Files of the table that min/max pruning left out of this scan (shown by EXPLAIN).
    pruned_files: usize,
    properties: Arc<PlanProperties>,
    /// Statistics, computed on first use: merging sketches is not free, and planners ask
    /// more than once. A scan cut with [`Self::with_shards`] starts afresh.
    statistics: Arc<StatisticsCache>,
}

/// Lazily computed statistics of a scan: for the whole scan and for each shard.
#[derive(Debug, Default)]
struct StatisticsCache {
    whole: OnceLock<Arc<Statistics>>,
    per_shard: Vec<OnceLock<Arc<Statistics>>>,
}

impl ShardScanExec {
    /// `predicate` is over `table_schema` and is used only to skip data (row groups, pages,
    /// rows); callers keep their own filter above the scan.
    pub fn try_new(
        table_name: impl Into<String>,
        table_schema: SchemaRef,
        projection: Option<Vec<usize>>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
        limit: Option<usize>,
        shards: Vec<ShardFiles>,
    ) -> Result<Self> {
        let output_schema = match &projection {
            Some(indices) => Arc::new(table_schema.project(indices)?),
            None => Arc::clone(&table_schema),
        };
        let shards_len = shards.len();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(output_schema),
            Partitioning::UnknownPartitioning(shards.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            table_name: table_name.into(),
            table_schema,
            projection,
            predicate,
            limit,
            shards,
            distribution_column: None,
            replicas: Vec::new(),
            pruned_files: 0,
            properties: Arc::new(properties),
            statistics: Arc::new(StatisticsCache {
                whole: OnceLock::new(),
                per_shard: (0..shards_len).map(|_| OnceLock::new()).collect(),
            }),
        })
    }

    /// Marks column `index` of the table schema as the distribution column: rows with equal
    /// values of it are in the same shard.
    pub fn with_distribution_column(mut self, index: Option<usize>) -> Self {
        self.distribution_column = index;
        self
    }

    pub fn distribution_column(&self) -> Option<usize> {
        self.distribution_column
    }

    /// Records that min/max pruning left `count` of the table's files out of this scan.
    pub fn with_pruned_files(mut self, count: usize) -> Self {
        self.pruned_files = count;
        self
    }

    /// Files of the table left out of this scan by min/max pruning.
    pub fn pruned_files(&self) -> usize {
        self.pruned_files
    }

    /// Records every placement of a reference table's shard.
    pub fn with_replicas(mut self, replicas: Vec<ShardFiles>) -> Self {
        self.replicas = replicas;
        self
    }

    /// Every placement of a reference table's shard (empty for other tables).
    pub fn replicas(&self) -> &[ShardFiles] {
        &self.replicas
    }

    /// The same scan reading the copy held by `node`, if it holds one.
    pub fn replica_on(&self, node: NodeId) -> Result<Option<Self>> {
        match self.replicas.iter().find(|r| r.node_id == node) {
            Some(replica) => Ok(Some(self.with_shards(vec![replica.clone()])?)),
            None => Ok(None),
        }
    }

    /// The table column behind output column `index`.
    pub fn table_column(&self, index: usize) -> Option<usize> {
        match &self.projection {
            Some(projection) => projection.get(index).copied(),
            None => Some(index),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    pub fn table_schema(&self) -> &SchemaRef {
        &self.table_schema
    }

    pub fn projection(&self) -> Option<&Vec<usize>> {
        self.projection.as_ref()
    }

    pub fn predicate(&self) -> Option<&Arc<dyn PhysicalExpr>> {
        self.predicate.as_ref()
    }

    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    pub fn shards(&self) -> &[ShardFiles] {
        &self.shards
    }

    /// The same scan restricted to `shards` (used to cut one fragment per worker).
    pub fn with_shards(&self, shards: Vec<ShardFiles>) -> Result<Self> {
        Ok(Self::try_new(
            self.table_name.clone(),
            Arc::clone(&self.table_schema),
            self.projection.clone(),
            self.predicate.clone(),
            self.limit,
            shards,
        )?
        .with_distribution_column(self.distribution_column)
        .with_pruned_files(self.pruned_files))
    }

    /// The statistics of `shards` (all of them, or one partition's).
    fn compute_statistics(&self, shards: &[ShardFiles]) -> Statistics {
        let files: Vec<&FileRef> = shards.iter().flat_map(|s| &s.files).collect();
        files_statistics(
            &self.table_schema,
            self.projection.as_deref(),
            &files,
            self.predicate.is_none(),
            self.limit,
        )
    }

    /// The Parquet scan of one shard's files. Footers and page indexes come from the
    /// runtime's file metadata cache (shard files never change under their names), so a
    /// repeated query, or one after a move that warmed the cache, reads no footer again.
    fn file_scan(&self, shard: &ShardFiles, context: &TaskContext) -> Result<Arc<DataSourceExec>> {
        let mut files = Vec::with_capacity(shard.files.len());
        for file in &shard.files {
            let path = validate_shard_file_path(&file.path)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            files.push(PartitionedFile::new(path.to_string(), file.byte_size));
        }
        let runtime = context.runtime_env();
        let store = runtime.object_store(DataRoot::object_store_url())?;
        let readers = CachedParquetFileReaderFactory::new(
            store,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let mut source = ParquetSource::new(Arc::clone(&self.table_schema))
            .with_parquet_file_reader_factory(Arc::new(readers));
        if let Some(predicate) = &self.predicate {
            source = source.with_predicate(Arc::clone(predicate));
        }
        let config = FileScanConfigBuilder::new(DataRoot::object_store_url(), Arc::new(source))
            .with_file_group(FileGroup::new(files))
            .with_projection_indices(self.projection.clone())?
            .with_limit(self.limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

impl DisplayAs for ShardScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: usize = self.shards.iter().map(|s| s.files.len()).sum();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "ShardScanExec: table={}, shards={}, files={}",
                    self.table_name,
                    self.shards.len(),
                    files
                )?;
                if self.pruned_files > 0 {
                    write!(f, " of {}", files + self.pruned_files)?;
                }
                if let Some(projection) = &self.projection {
                    let names: Vec<_> = projection
                        .iter()
                        .map(|i| self.table_schema.field(*i).name().as_str())
                        .collect();
                    write!(f, ", projection=[{}]", names.join(", "))?;
                }
                if let Some(predicate) = &self.predicate {
                    write!(f, ", predicate={predicate}")?;
                }
                if let Some(limit) = self.limit {
                    write!(f, ", limit={limit}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "table={}", self.table_name)?;
                write!(f, "shards={}", self.shards.len())
            }
        }
    }
}

impl ExecutionPlan for ShardScanExec {
    fn name(&self) -> &str {
        "ShardScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.predicate {
            Some(predicate) => f(predicate),
            None => Ok(TreeNodeRecursion::Continue),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("ShardScanExec has no children");
        }
        Ok(self)
    }

    /// The catalog's statistics of the files read (see `column_stats::scan_statistics`):
    /// per partition, those of its shard's files. Row counts and bounds are exact only when
    /// the scan reads every row; a scan decoded on a worker has no file statistics and
    /// reports its columns as unknown.
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let statistics = match args.partition() {
            Some(p) => match (self.shards.get(p..=p), self.statistics.per_shard.get(p)) {
                (Some(shard), Some(cache)) => {
                    cache.get_or_init(|| Arc::new(self.compute_statistics(shard)))
                }
                // The one partition of a scan without shards: it reads nothing.
                _ => return Ok(Arc::new(self.compute_statistics(&[]))),
            },
            None => self
                .statistics
                .whole
                .get_or_init(|| Arc::new(self.compute_statistics(&self.shards))),
        };
        Ok(Arc::clone(statistics))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(shard) = self.shards.get(partition) else {
            if partition == 0 && self.shards.is_empty() {
                return Ok(Box::pin(EmptyRecordBatchStream::new(self.schema())));
            }
            return exec_err!(
                "ShardScanExec of {} has no partition {partition}",
                self.table_name
            );
        };
        if shard.files.is_empty() {
            return Ok(Box::pin(EmptyRecordBatchStream::new(self.schema())));
        }
        self.file_scan(shard, &context)?.execute(0, context)
    }
}
