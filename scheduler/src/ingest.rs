//! [`TableWriter`]: moves rows into a table's shards, all-or-nothing.
//!
//! 1. Each batch is hash-split by the distribution column (a reference or local table has one
//!    shard) and buffered per shard until it is worth sending.
//! 2. Each placement gets its own Flight `DoPut` stream to its worker (or a local write on
//!    the coordinator for group 0), opened when its first rows arrive.
//! 3. `finish` closes the streams and collects the files the workers wrote. The caller commits
//!    them in one catalog transaction; until then no query can see them.
//!
//! If anything fails — a NULL distribution key, a worker that dies, a commit conflict — every
//! stream is cancelled and every file already written is deleted, so nothing of the statement
//! remains visible or on disk.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_flight::FlightDescriptor;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use shardfusion_catalog::layout::{DistributionPlan, ShardLayout};
use shardfusion_catalog::{CatalogSnapshot, FileMeta, TableKind, TableMeta};
use shardfusion_common::hashing::split_by_shard;
use shardfusion_common::ids::{GroupId, PlacementId, ShardId, TableId};
use shardfusion_common::storage::shard_file_path;
use shardfusion_common::wire::{WriteRequest, WrittenFile};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::cluster::Cluster;
use crate::error::{Result, SchedulerError};
use crate::worker_pool::worker_status;

/// Rows buffered per shard before they are sent.
const SEND_ROWS: usize = 16 * 1024;

struct Target {
    shard_id: ShardId,
    placements: Vec<(PlacementId, GroupId)>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

impl Target {
    fn new((shard_id, placements): ShardLayout) -> Self {
        Self {
            shard_id,
            placements,
            pending: Vec::new(),
            pending_rows: 0,
        }
    }
}

enum Routing {
    Hash { column: usize, name: String },
    Single,
}

struct PlacementSink {
    group: GroupId,
    sender: Option<mpsc::Sender<RecordBatch>>,
    task: JoinHandle<Result<Option<WrittenFile>>>,
}

/// Writes one statement's rows into a table's shards. See the module docs.
pub struct TableWriter {
    cluster: Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
    table_id: TableId,
    table_name: String,
    schema: SchemaRef,
    routing: Routing,
    targets: Vec<Target>,
    sinks: HashMap<PlacementId, PlacementSink>,
    rows: u64,
}

impl TableWriter {
    /// A writer into the table's current shards.
    pub fn for_table(
        cluster: Arc<Cluster>,
        snapshot: Arc<CatalogSnapshot>,
        table: &TableMeta,
    ) -> Result<Self> {
        let targets = table.layout().into_iter().map(Target::new).collect();
        Self::new(cluster, snapshot, table, &table.kind, targets)
    }

    /// A writer into the shards a distribution plan is about to create.
    pub fn for_distribution(
        cluster: Arc<Cluster>,
        snapshot: Arc<CatalogSnapshot>,
        table: &TableMeta,
        plan: &DistributionPlan,
    ) -> Result<Self> {
        let targets = plan.layout().into_iter().map(Target::new).collect();
        Self::new(cluster, snapshot, table, &plan.kind, targets)
    }

    fn new(
        cluster: Arc<Cluster>,
        snapshot: Arc<CatalogSnapshot>,
        table: &TableMeta,
        kind: &TableKind,
        targets: Vec<Target>,
    ) -> Result<Self> {
        let routing = match kind {
            TableKind::Distributed { column, .. } => {
                let (index, _) = table.schema.column_with_name(column).ok_or_else(|| {
                    SchedulerError::invalid(format!(
                        "distribution column {column} is missing from {}",
                        table.name
                    ))
                })?;
                Routing::Hash {
                    column: index,
                    name: column.clone(),
                }
            }
            _ => Routing::Single,
        };
        if targets.is_empty() {
            return Err(SchedulerError::invalid(format!(
                "table {} has no shards to write to",
                table.name
            )));
        }
        Ok(Self {
            cluster,
            snapshot,
            table_id: table.table_id,
            table_name: table.name.clone(),
            schema: Arc::clone(&table.schema),
            routing,
            targets,
            sinks: HashMap::new(),
            rows: 0,
        })
    }

    /// The schema batches must have.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Routes one batch (already in the table's schema) to its shards.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        crate::not_null::check_not_null(&self.table_name, &self.schema, &batch)?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec())
            .map_err(|e| {
                SchedulerError::invalid(format!(
                    "rows do not match the columns of {}: {e}",
                    self.table_name
                ))
            })?;
        self.rows += batch.num_rows() as u64;
        let parts = match &self.routing {
            Routing::Hash { column, name } => {
                split_by_shard(&batch, *column, name, self.targets.len())?
            }
            Routing::Single => vec![(0, batch)],
        };
        for (index, part) in parts {
            let target = &mut self.targets[index];
            target.pending_rows += part.num_rows();
            target.pending.push(part);
            if target.pending_rows >= SEND_ROWS {
                self.flush(index).await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self, index: usize) -> Result<()> {
        let target = &mut self.targets[index];
        if target.pending.is_empty() {
            return Ok(());
        }
        let batch = concat_batches(&self.schema, &target.pending)
            .map_err(|e| SchedulerError::DataFusion(e.into()))?;
        target.pending.clear();
        target.pending_rows = 0;
        let shard_id = target.shard_id;
        let placements = target.placements.clone();
        for (placement, group) in placements {
            if !self.sinks.contains_key(&placement) {
                let sink = self.open_sink(shard_id, group)?;
                self.sinks.insert(placement, sink);
            }
            let sender = self.sinks.get(&placement).and_then(|s| s.sender.clone());
            let Some(sender) = sender else { continue };
            if sender.send(batch.clone()).await.is_err() {
                // The stream ended early; its task holds the reason.
                if let Some(sink) = self.sinks.remove(&placement) {
                    let group = sink.group;
                    return Err(match sink.task.await {
                        Ok(Err(e)) => e,
                        Ok(Ok(_)) => SchedulerError::Worker {
                            node: self.node_label(group),
                            status: tonic::Status::internal("write stream closed early"),
                        },
                        Err(e) => SchedulerError::Worker {
                            node: self.node_label(group),
                            status: tonic::Status::internal(e.to_string()),
                        },
                    });
                }
            }
        }
        Ok(())
    }

    fn node_label(&self, group: GroupId) -> String {
        if group == GroupId::COORDINATOR {
            return "coordinator".to_string();
        }
        self.snapshot
            .node_of_group(group)
            .map(|n| format!("{}:{}", n.node_name, n.node_port))
            .unwrap_or_else(|| format!("group {group}"))
    }

    fn open_sink(&self, shard: ShardId, group: GroupId) -> Result<PlacementSink> {
        let (sender, receiver) = mpsc::channel::<RecordBatch>(2);
        let write_id = uuid::Uuid::new_v4().to_string();
        let rows = ReceiverStream::new(receiver);
        let task = if group == GroupId::COORDINATOR {
            let root = self.cluster.root.clone();
            let path = shard_file_path(self.table_id, shard, &write_id);
            tokio::spawn(async move {
                shardfusion_executor::shard_writer::write_shard_file(
                    &root,
                    &path,
                    rows.map(Ok::<_, DataFusionError>),
                )
                .await
                .map_err(|e| SchedulerError::Worker {
                    node: "coordinator".into(),
                    status: e.into(),
                })
            })
        } else {
            let node = self.snapshot.node_of_group(group).ok_or_else(|| {
                SchedulerError::invalid(format!("no node holds placement group {group}"))
            })?;
            let label = format!("{}:{}", node.node_name, node.node_port);
            let mut client = self.cluster.workers.client(&node.url())?;
            let request = WriteRequest {
                table_id: self.table_id.0,
                shard_id: shard.0,
                write_id,
            };
            let descriptor = FlightDescriptor::new_cmd(request.encode_to_vec());
            let data = FlightDataEncoderBuilder::new()
                .with_schema(Arc::clone(&self.schema))
                .with_flight_descriptor(Some(descriptor))
                .build(rows.map(Ok::<_, FlightError>));
            tokio::spawn(async move {
                let worker_error = |e: FlightError| SchedulerError::Worker {
                    node: label.clone(),
                    status: match e {
                        FlightError::Tonic(s) => worker_status(&label, *s),
                        other => tonic::Status::unavailable(other.to_string()),
                    },
                };
                let results: Vec<_> = client
                    .do_put(data)
                    .await
                    .map_err(worker_error)?
                    .try_collect()
                    .await
                    .map_err(worker_error)?;
                let mut written = None;
                for result in results {
                    if !result.app_metadata.is_empty() {
                        written = Some(WrittenFile::decode(result.app_metadata).map_err(|e| {
                            SchedulerError::Worker {
                                node: label.clone(),
                                status: tonic::Status::internal(format!("bad write result: {e}")),
                            }
                        })?);
                    }
                }
                Ok(written)
            })
        };
        Ok(PlacementSink {
            group,
            sender: Some(sender),
            task,
        })
    }

    /// Sends what is buffered, closes every stream and returns the files written.
    /// On failure, everything already written is deleted before the error is returned.
    pub async fn finish(mut self) -> Result<WrittenFiles> {
        for index in 0..self.targets.len() {
            if let Err(e) = self.flush(index).await {
                self.abort().await;
                return Err(e);
            }
        }
        let mut files = Vec::new();
        let mut first_error = None;
        let sinks: Vec<_> = self.sinks.drain().collect();
        for (placement, mut sink) in sinks {
            sink.sender.take();
            match sink.task.await {
                Ok(Ok(Some(written))) => files.push((
                    placement,
                    sink.group,
                    FileMeta {
                        path: written.path,
                        row_count: written.row_count,
                        byte_size: written.byte_size,
                    },
                )),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(SchedulerError::Worker {
                        node: self.node_label(sink.group),
                        status: tonic::Status::internal(e.to_string()),
                    });
                }
            }
        }
        let written = WrittenFiles {
            files,
            rows: self.rows,
        };
        if let Some(e) = first_error {
            written.discard(&self.cluster, &self.snapshot).await;
            return Err(e);
        }
        Ok(written)
    }

    /// Cancels every stream and deletes whatever was completely written.
    pub async fn abort(mut self) {
        let sinks: Vec<_> = self.sinks.drain().collect();
        let mut files = Vec::new();
        for (placement, mut sink) in sinks {
            sink.sender.take();
            sink.task.abort();
            if let Ok(Ok(Some(w))) = sink.task.await {
                files.push((
                    placement,
                    sink.group,
                    FileMeta {
                        path: w.path,
                        row_count: w.row_count,
                        byte_size: w.byte_size,
                    },
                ));
            }
        }
        WrittenFiles { files, rows: 0 }
            .discard(&self.cluster, &self.snapshot)
            .await;
    }

    /// Writes every batch of `stream`, converting each with `conform` first.
    pub async fn write_all<S>(
        mut self,
        stream: S,
        conform: impl Fn(RecordBatch) -> Result<RecordBatch>,
    ) -> Result<WrittenFiles>
    where
        S: Stream<Item = std::result::Result<RecordBatch, DataFusionError>>,
    {
        let mut stream = std::pin::pin!(stream);
        while let Some(batch) = stream.next().await {
            let result = match batch {
                Ok(batch) => match conform(batch) {
                    Ok(batch) => self.write(batch).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(SchedulerError::DataFusion(e)),
            };
            if let Err(e) = result {
                self.abort().await;
                return Err(e);
            }
        }
        self.finish().await
    }
}

/// Files a statement wrote but has not committed yet.
#[derive(Debug, Default)]
pub struct WrittenFiles {
    pub files: Vec<(PlacementId, GroupId, FileMeta)>,
    pub rows: u64,
}

impl WrittenFiles {
    pub fn for_commit(&self) -> Vec<(PlacementId, FileMeta)> {
        self.files.iter().map(|(p, _, f)| (*p, f.clone())).collect()
    }

    /// Deletes the files (the statement failed, or its commit did).
    pub async fn discard(self, cluster: &Cluster, snapshot: &CatalogSnapshot) {
        let files = self.files.into_iter().map(|(_, g, f)| (g, f)).collect();
        cluster.delete_garbage(snapshot, files).await;
    }

    /// Makes the files the table's only files in one catalog transaction (the old ones are
    /// deleted afterwards), or deletes the new files if that fails.
    pub async fn commit_replacing(
        self,
        cluster: &Cluster,
        snapshot: &CatalogSnapshot,
        table: &str,
    ) -> Result<u64> {
        let committed = cluster.catalog.replace_files(table, &self.for_commit());
        self.settle(cluster, snapshot, committed).await
    }

    /// Commits the files to `table` in one catalog transaction, or deletes them.
    pub async fn commit(
        self,
        cluster: &Cluster,
        snapshot: &CatalogSnapshot,
        table: &str,
    ) -> Result<u64> {
        let committed = cluster
            .catalog
            .commit_files(table, &self.for_commit())
            .map(|()| Vec::new());
        self.settle(cluster, snapshot, committed).await
    }

    /// After a commit attempt: deletes what is now garbage (the replaced files on success,
    /// the new files on failure) and returns the row count or the error.
    async fn settle(
        self,
        cluster: &Cluster,
        snapshot: &CatalogSnapshot,
        committed: std::result::Result<Vec<(GroupId, FileMeta)>, shardfusion_catalog::CatalogError>,
    ) -> Result<u64> {
        let rows = self.rows;
        match committed {
            Ok(garbage) => {
                cluster.delete_garbage(snapshot, garbage).await;
                Ok(rows)
            }
            Err(e) => {
                self.discard(cluster, snapshot).await;
                Err(e.into())
            }
        }
    }
}
