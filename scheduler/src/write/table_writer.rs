//! [`TableWriter`]: moves rows into a table's shards, all-or-nothing.
//!
//! 1. Each batch is hash-split by the distribution column (a reference or local table has one
//!    shard) and buffered per shard until it is worth sending.
//! 2. Each placement gets its own Flight `DoPut` stream to its worker (or a local write on
//!    the coordinator for group 0), opened when its first rows arrive.
//! 3. `finish` completes the streams (each ends with the completion marker, see
//!    `shardfusion_executor::write_completion`) and collects the files the workers wrote. The
//!    caller commits them in one catalog transaction; until then no query can see them.
//!
//! If anything fails — a NULL distribution key, a worker that dies, a commit conflict — every
//! stream is ended *without* its completion marker, so the workers discard what they wrote, and
//! every file already completed is deleted: nothing of the statement remains visible or on
//! disk. The same holds when the statement is dropped midway (the client cancelled or went
//! away): the stream tasks belong to the writer, and dropping it ends them and deletes what
//! was completed ([`TableWriter`]'s and [`WrittenFiles`]' `Drop`). Every file a writer may
//! create is registered as in flight ([`crate::cluster::in_flight_writes::InFlightWrites`]) until it is
//! committed or deleted, so orphan reconciliation never takes it for garbage.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_flight::FlightDescriptor;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::DataFusionError;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use shardfusion_catalog::layout::{DistributionPlan, ShardLayout};
use shardfusion_catalog::{CatalogError, CatalogSnapshot, FileMeta, TableKind, TableMeta};
use shardfusion_common::auth::FlightMethod;
use shardfusion_common::hashing::{ShardRanges, split_by_shard};
use shardfusion_common::ids::{GroupId, PlacementId, ShardId, TableId};
use shardfusion_common::storage::shard_file_path;
use shardfusion_common::wire::{WriteRequest, WrittenFile};
use shardfusion_executor::write_completion::completion_marker;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cluster::in_flight_writes::InFlightWrite;
use crate::cluster::shared_state::Cluster;
use crate::cluster::worker_pool::worker_status;
use crate::error::{Result, SchedulerError};
pub use crate::write::written_files::WrittenFiles;

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
    /// By the hash of column `column` (named `name`) into the shards of `ranges`.
    Hash {
        column: usize,
        name: String,
        ranges: ShardRanges,
    },
    Single,
}

/// What the writer sends down one placement's stream.
enum WriteMessage {
    Rows(RecordBatch),
    /// Every row was sent: the node may keep the file. Never sent for an aborted statement.
    Complete,
}

/// The rows of `receiver` until [`WriteMessage::Complete`]; sets `completed` when it arrives.
/// If the writer goes away first, the stream just ends and `completed` stays false.
fn rows_until_complete(
    receiver: mpsc::Receiver<WriteMessage>,
    completed: Arc<AtomicBool>,
) -> impl Stream<Item = RecordBatch> + Send {
    ReceiverStream::new(receiver).scan((), move |_, message| {
        futures::future::ready(match message {
            WriteMessage::Rows(batch) => Some(batch),
            WriteMessage::Complete => {
                completed.store(true, Ordering::Release);
                None
            }
        })
    })
}

type SinkTask = SpawnedTask<Result<Option<WrittenFile>>>;

struct PlacementSink {
    group: GroupId,
    sender: Option<mpsc::Sender<WriteMessage>>,
    /// Aborted when dropped, so no stream outlives its statement.
    task: SinkTask,
    in_flight: InFlightWrite,
}

/// Writes one statement's rows into a table's shards. See the module docs.
pub struct TableWriter {
    cluster: Arc<Cluster>,
    snapshot: Arc<CatalogSnapshot>,
    table_id: TableId,
    table_name: String,
    schema: SchemaRef,
    /// The table's `CHECK` constraints, evaluated on every row written.
    checks: Option<crate::session::check_constraints::Checks>,
    /// The table's indexed columns, which the files keep bloom filters for.
    bloom_filter_columns: Vec<String>,
    routing: Routing,
    targets: Vec<Target>,
    sinks: HashMap<PlacementId, PlacementSink>,
    /// Files completed by `finish` and not yet handed to the caller.
    finished: Vec<(PlacementId, GroupId, FileMeta)>,
    finished_in_flight: Vec<InFlightWrite>,
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
        let ranges: Vec<_> = table.shards.iter().map(|s| s.hash_range).collect();
        Self::new(cluster, snapshot, table, &table.kind, targets, &ranges)
    }

    /// A writer into the shards a distribution plan is about to create.
    pub fn for_distribution(
        cluster: Arc<Cluster>,
        snapshot: Arc<CatalogSnapshot>,
        table: &TableMeta,
        plan: &DistributionPlan,
    ) -> Result<Self> {
        let targets = plan.layout().into_iter().map(Target::new).collect();
        let ranges: Vec<_> = plan.shards.iter().map(|s| s.hash_range).collect();
        Self::new(cluster, snapshot, table, &plan.kind, targets, &ranges)
    }

    fn new(
        cluster: Arc<Cluster>,
        snapshot: Arc<CatalogSnapshot>,
        table: &TableMeta,
        kind: &TableKind,
        targets: Vec<Target>,
        ranges: &[Option<(i32, i32)>],
    ) -> Result<Self> {
        let routing = match kind {
            TableKind::Distributed { column, .. } => {
                let (index, _) = table.schema.column_with_name(column).ok_or_else(|| {
                    SchedulerError::invalid(format!(
                        "distribution column {column} is missing from {}",
                        table.name
                    ))
                })?;
                let ranges: Option<Vec<(i32, i32)>> = ranges.iter().copied().collect();
                let ranges =
                    ShardRanges::from_ranges(&ranges.unwrap_or_default()).map_err(|e| {
                        CatalogError::Inconsistent {
                            what: format!("the shards of {}: {e}", table.name),
                        }
                    })?;
                Routing::Hash {
                    column: index,
                    name: column.clone(),
                    ranges,
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
            checks: crate::session::check_constraints::Checks::of(table)?,
            bloom_filter_columns: table.indexed_columns(),
            routing,
            targets,
            sinks: HashMap::new(),
            finished: Vec::new(),
            finished_in_flight: Vec::new(),
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
        crate::write::not_null::check_not_null(&self.table_name, &self.schema, &batch)?;
        let batch =
            shardfusion_common::pg_types::conform_values(&self.table_name, &self.schema, batch)
                .map_err(SchedulerError::BadValue)?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec())
            .map_err(|e| {
                SchedulerError::invalid(format!(
                    "rows do not match the columns of {}: {e}",
                    self.table_name
                ))
            })?;
        if let Some(checks) = &self.checks {
            checks.check(&batch)?;
        }
        self.rows += batch.num_rows() as u64;
        let parts = match &self.routing {
            Routing::Hash {
                column,
                name,
                ranges,
            } => split_by_shard(&batch, *column, name, ranges)?,
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
            if sender
                .send(WriteMessage::Rows(batch.clone()))
                .await
                .is_err()
            {
                // The stream ended early; its task holds the reason.
                if let Some(sink) = self.sinks.remove(&placement) {
                    let group = sink.group;
                    return Err(match sink.task.join().await {
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
        let (sender, receiver) = mpsc::channel::<WriteMessage>(2);
        let write_id = uuid::Uuid::new_v4().to_string();
        let path = shard_file_path(self.table_id, shard, &write_id);
        // Registered before the node can create the file, so reconciliation never sees an
        // unregistered file of this statement.
        let in_flight = self.cluster.orphans.in_flight().begin(group, &path);
        let completed = Arc::new(AtomicBool::new(false));
        let rows = rows_until_complete(receiver, Arc::clone(&completed));
        let sort_column = match &self.routing {
            Routing::Hash { name, .. } => Some(name.clone()),
            Routing::Single => None,
        };
        let task = if group == GroupId::COORDINATOR {
            let root = self.cluster.root.clone();
            // Without the completion message the rows end in an error, and the writer
            // removes the file.
            let end = futures::stream::once(async move {
                (!completed.load(Ordering::Acquire)).then(|| {
                    Err(DataFusionError::Execution(
                        "the statement ended before all its rows were written".to_string(),
                    ))
                })
            })
            .filter_map(futures::future::ready);
            let rows = rows.map(Ok::<_, DataFusionError>).chain(end);
            let bloom_filter_columns = self.bloom_filter_columns.clone();
            SpawnedTask::spawn(async move {
                let layout = shardfusion_executor::shard_writer::FileLayout {
                    sort_by: sort_column.as_deref(),
                    bloom_filter_columns: &bloom_filter_columns,
                };
                shardfusion_executor::shard_writer::write_shard_file(&root, &path, layout, rows)
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
            let url = node.url();
            let workers = Arc::clone(&self.cluster.workers);
            let request = WriteRequest {
                table_id: self.table_id.0,
                shard_id: shard.0,
                write_id,
                sort_column: sort_column.unwrap_or_default(),
                bloom_filter_columns: self.bloom_filter_columns.clone(),
            }
            .encode_to_vec();
            let descriptor = FlightDescriptor::new_cmd(request.clone());
            // The marker goes last, and only if the writer completed the stream; otherwise the
            // request just ends and the worker discards the file.
            let marker = futures::stream::once(async move {
                completed
                    .load(Ordering::Acquire)
                    .then(|| Ok(completion_marker()))
            })
            .filter_map(futures::future::ready);
            let data = FlightDataEncoderBuilder::new()
                .with_schema(Arc::clone(&self.schema))
                .with_flight_descriptor(Some(descriptor))
                .build(rows.map(Ok::<_, FlightError>))
                .chain(marker);
            SpawnedTask::spawn(async move {
                let worker_error = |e: FlightError| SchedulerError::Worker {
                    node: label.clone(),
                    status: match e {
                        FlightError::Tonic(s) => worker_status(&label, *s),
                        other => tonic::Status::unavailable(other.to_string()),
                    },
                };
                let mut client = workers
                    .signed_client(&url, FlightMethod::DoPut, &[request.as_slice()])
                    .await
                    .map_err(|s| SchedulerError::Worker {
                        node: label.clone(),
                        status: worker_status(&label, s),
                    })?;
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
            in_flight,
        })
    }

    /// Sends what is buffered, completes every stream and returns the files written.
    /// On failure, everything already written is deleted before the error is returned.
    pub async fn finish(mut self) -> Result<WrittenFiles> {
        for index in 0..self.targets.len() {
            if let Err(e) = self.flush(index).await {
                self.abort().await;
                return Err(e);
            }
        }
        // Only now may the nodes keep their files.
        for sink in self.sinks.values_mut() {
            if let Some(sender) = sink.sender.take() {
                // A closed channel means the stream already failed; its task says why.
                let _ = sender.send(WriteMessage::Complete).await;
            }
        }
        let mut first_error = None;
        let placements: Vec<PlacementId> = self.sinks.keys().copied().collect();
        for placement in placements {
            // The sink stays in `self.sinks` while its task runs, so that a statement dropped
            // here still deletes the file that task is completing (see `Drop`).
            let Some(sink) = self.sinks.get_mut(&placement) else {
                continue;
            };
            let result = (&mut sink.task).await;
            let Some(sink) = self.sinks.remove(&placement) else {
                continue;
            };
            match result {
                Ok(Ok(Some(written))) => {
                    self.finished
                        .push((placement, sink.group, file_meta(written)));
                    self.finished_in_flight.push(sink.in_flight);
                }
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
            files: std::mem::take(&mut self.finished),
            rows: self.rows,
            schema: Arc::clone(&self.schema),
            in_flight: std::mem::take(&mut self.finished_in_flight),
            owner: Some(Arc::clone(&self.cluster)),
        };
        if let Some(e) = first_error {
            written.discard(&self.cluster, &self.snapshot).await;
            return Err(e);
        }
        Ok(written)
    }

    /// Ends every stream without completing it, so no node keeps a file of this statement,
    /// and deletes whatever `finish` had already collected.
    pub async fn abort(mut self) {
        // No stream here was completed (`finish` completes and joins them all before it can
        // fail), so dropping a sink — its sender without `Complete`, its task aborted — is
        // enough: the node discards the file, even if it never hears from us again.
        self.sinks.clear();
        let garbage = WrittenFiles {
            files: std::mem::take(&mut self.finished),
            rows: 0,
            schema: Arc::clone(&self.schema),
            in_flight: std::mem::take(&mut self.finished_in_flight),
            owner: None,
        };
        garbage.discard(&self.cluster, &self.snapshot).await;
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

/// The catalog's record of a file a node wrote.
pub(crate) fn file_meta(written: WrittenFile) -> FileMeta {
    FileMeta {
        stats: shardfusion_common::column_stats::encoding::from_messages(&written.columns)
            .map(Arc::new),
        path: written.path,
        row_count: written.row_count,
        byte_size: written.byte_size,
    }
}

impl Drop for TableWriter {
    /// The statement was dropped midway (its client cancelled or went away): end every stream
    /// uncompleted and delete what was already completed. Tasks completing a file right now
    /// (`finish` was under way) are awaited first, so their files are deleted too.
    fn drop(&mut self) {
        if self.sinks.is_empty() && self.finished.is_empty() {
            return;
        }
        // Streams not yet completed end uncompleted right here; only the completed ones can
        // still produce a file, so only those are awaited.
        let sinks: Vec<_> = self
            .sinks
            .drain()
            .filter(|(_, sink)| sink.sender.is_none())
            .collect();
        let mut files = std::mem::take(&mut self.finished);
        let mut in_flight = std::mem::take(&mut self.finished_in_flight);
        let cluster = Arc::clone(&self.cluster);
        let snapshot = Arc::clone(&self.snapshot);
        let schema = Arc::clone(&self.schema);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Detached on purpose: the cleanup must outlive the statement it cleans up after,
        // and it ends once each task has answered.
        runtime.spawn(async move {
            for (placement, sink) in sinks {
                if let Ok(Ok(Some(written))) = sink.task.join().await {
                    files.push((placement, sink.group, file_meta(written)));
                }
                in_flight.push(sink.in_flight);
            }
            let garbage = WrittenFiles {
                files,
                rows: 0,
                schema,
                in_flight,
                owner: None,
            };
            garbage.discard(&cluster, &snapshot).await;
        });
    }
}
