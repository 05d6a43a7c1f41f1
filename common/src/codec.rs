//! The datafusion-proto extension codec for ShardFusion's own execution plans.
//!
//! Standard DataFusion operators are encoded by datafusion-proto itself; this codec adds
//! [`ShardScanExec`], [`BroadcastExec`] (whose rows travel as an Arrow IPC stream) and
//! [`ShuffleReadExec`] (with its producers' plans). Plans cross the wire only through this
//! path, never as SQL or `Debug` text.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{Result, internal_datafusion_err, plan_err};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::{
    serialize_physical_expr, serialize_physical_expr_with_converter,
};
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanNodeExt, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf;
use prost::Message;

use crate::broadcast::BroadcastExec;
use crate::exchange::shard_index::{SHARD_INDEX_FUNCTION, shard_index_function};
use crate::exchange::shuffle_read::{ShuffleKind, ShuffleProducer, ShuffleReadExec, ShuffleSource};
use crate::exchange::transport::TaskTarget;
use crate::ids::{NodeId, ShardId};
use crate::shard_scan::{FileRef, ShardFiles, ShardScanExec};

/// Encodes and decodes ShardFusion's extension nodes.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardFusionCodec;

#[derive(Clone, PartialEq, Message)]
struct ExtensionNode {
    #[prost(oneof = "ExtensionKind", tags = "1, 2, 3")]
    kind: Option<ExtensionKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum ExtensionKind {
    #[prost(message, tag = "1")]
    ShardScan(ShardScanNode),
    #[prost(message, tag = "2")]
    Broadcast(BroadcastNode),
    #[prost(message, tag = "3")]
    ShuffleRead(ShuffleReadNode),
}

#[derive(Clone, PartialEq, Message)]
struct ShuffleReadNode {
    #[prost(uint32, tag = "1")]
    input: u32,
    /// datafusion-proto `Schema` of the rows.
    #[prost(bytes = "vec", tag = "2")]
    schema: Vec<u8>,
    /// datafusion-proto `PhysicalExprNode`s over that schema.
    #[prost(bytes = "vec", repeated, tag = "3")]
    keys: Vec<Vec<u8>>,
    #[prost(uint32, tag = "4")]
    partitions: u32,
    /// Absent for a placeholder.
    #[prost(message, optional, tag = "5")]
    source: Option<ShuffleSourceNode>,
    /// For a shard-aligned shuffle: the column rows were routed by.
    #[prost(uint32, optional, tag = "6")]
    shard_key_column: Option<u32>,
}

#[derive(Clone, PartialEq, Message)]
struct ShuffleSourceNode {
    #[prost(message, repeated, tag = "1")]
    producers: Vec<ShuffleProducerNode>,
    #[prost(uint32, repeated, tag = "2")]
    partitions: Vec<u32>,
    #[prost(uint32, tag = "3")]
    readers: u32,
}

#[derive(Clone, PartialEq, Message)]
struct ShuffleProducerNode {
    #[prost(string, tag = "1")]
    url: String,
    #[prost(string, tag = "2")]
    audience: String,
    #[prost(string, tag = "3")]
    label: String,
    #[prost(bytes = "vec", tag = "4")]
    plan: Vec<u8>,
    #[prost(string, tag = "5")]
    stage_key: String,
}

#[derive(Clone, PartialEq, Message)]
struct BroadcastNode {
    #[prost(uint32, tag = "1")]
    input: u32,
    /// datafusion-proto `Schema` of the rows.
    #[prost(bytes = "vec", tag = "2")]
    schema: Vec<u8>,
    /// The rows as an Arrow IPC stream; absent for a placeholder.
    #[prost(bytes = "vec", optional, tag = "3")]
    rows: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct ShardScanNode {
    #[prost(string, tag = "1")]
    table_name: String,
    /// datafusion-proto `Schema` of the whole table.
    #[prost(bytes = "vec", tag = "2")]
    table_schema: Vec<u8>,
    #[prost(uint32, repeated, tag = "3")]
    projection: Vec<u32>,
    #[prost(bool, tag = "4")]
    has_projection: bool,
    /// datafusion-proto `PhysicalExprNode` over the table schema; empty when absent.
    #[prost(bytes = "vec", tag = "5")]
    predicate: Vec<u8>,
    #[prost(uint64, optional, tag = "6")]
    limit: Option<u64>,
    #[prost(message, repeated, tag = "7")]
    shards: Vec<ShardFilesNode>,
    #[prost(uint32, optional, tag = "8")]
    distribution_column: Option<u32>,
}

#[derive(Clone, PartialEq, Message)]
struct ShardFilesNode {
    #[prost(int64, tag = "1")]
    shard_id: i64,
    #[prost(int32, tag = "2")]
    node_id: i32,
    #[prost(message, repeated, tag = "3")]
    files: Vec<FileRefNode>,
}

#[derive(Clone, PartialEq, Message)]
struct FileRefNode {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(uint64, tag = "2")]
    byte_size: u64,
    #[prost(uint64, tag = "3")]
    row_count: u64,
}

impl ShardFusionCodec {
    fn encode_shard_scan(&self, scan: &ShardScanExec) -> Result<ShardScanNode> {
        let schema = protobuf::Schema::try_from(scan.table_schema().as_ref())
            .map_err(|e| internal_datafusion_err!("cannot encode schema: {e}"))?;
        let predicate = match scan.predicate() {
            Some(p) => serialize_physical_expr(p, self)?.encode_to_vec(),
            None => Vec::new(),
        };
        Ok(ShardScanNode {
            table_name: scan.table_name().to_string(),
            table_schema: schema.encode_to_vec(),
            projection: scan
                .projection()
                .map(|p| p.iter().map(|i| *i as u32).collect())
                .unwrap_or_default(),
            has_projection: scan.projection().is_some(),
            predicate,
            limit: scan.limit().map(|l| l as u64),
            distribution_column: scan.distribution_column().map(|c| c as u32),
            shards: scan
                .shards()
                .iter()
                .map(|s| ShardFilesNode {
                    shard_id: s.shard_id.0,
                    node_id: s.node_id.0,
                    files: s
                        .files
                        .iter()
                        .map(|f| FileRefNode {
                            path: f.path.clone(),
                            byte_size: f.byte_size,
                            row_count: f.row_count,
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    fn decode_shard_scan(&self, node: ShardScanNode, ctx: &TaskContext) -> Result<ShardScanExec> {
        let schema_proto = protobuf::Schema::decode(node.table_schema.as_slice())
            .map_err(|e| internal_datafusion_err!("cannot decode schema: {e}"))?;
        let schema = Arc::new(
            Schema::try_from(&schema_proto)
                .map_err(|e| internal_datafusion_err!("cannot decode schema: {e}"))?,
        );
        let predicate = if node.predicate.is_empty() {
            None
        } else {
            let expr = protobuf::PhysicalExprNode::decode(node.predicate.as_slice())
                .map_err(|e| internal_datafusion_err!("cannot decode predicate: {e}"))?;
            Some(parse_physical_expr(&expr, ctx, &schema, self)?)
        };
        let projection = node
            .has_projection
            .then(|| node.projection.iter().map(|i| *i as usize).collect());
        let shards = node
            .shards
            .into_iter()
            .map(|s| ShardFiles {
                shard_id: ShardId(s.shard_id),
                node_id: NodeId(s.node_id),
                files: s
                    .files
                    .into_iter()
                    .map(|f| FileRef {
                        path: f.path,
                        byte_size: f.byte_size,
                        row_count: f.row_count,
                        // Statistics stay on the coordinator: fragments do not carry them.
                        stats: None,
                    })
                    .collect(),
            })
            .collect();
        let distribution_column = node.distribution_column.map(|c| c as usize);
        Ok(ShardScanExec::try_new(
            node.table_name,
            schema,
            projection,
            predicate,
            node.limit.map(|l| l as usize),
            shards,
        )?
        .with_distribution_column(distribution_column))
    }

    fn encode_broadcast(&self, node: &BroadcastExec) -> Result<BroadcastNode> {
        let rows = match node.batches() {
            Some(batches) => {
                let mut buffer = Vec::new();
                let mut writer = StreamWriter::try_new(&mut buffer, &node.schema())?;
                for batch in batches.iter() {
                    writer.write(batch)?;
                }
                writer.finish()?;
                drop(writer);
                Some(buffer)
            }
            None => None,
        };
        Ok(BroadcastNode {
            input: node.input() as u32,
            schema: encode_schema(&node.schema())?,
            rows,
        })
    }

    fn decode_broadcast(&self, node: BroadcastNode) -> Result<BroadcastExec> {
        let schema = Arc::new(decode_schema(&node.schema)?);
        let placeholder = BroadcastExec::placeholder(node.input as usize, schema);
        let Some(rows) = node.rows else {
            return Ok(placeholder);
        };
        let reader = StreamReader::try_new(rows.as_slice(), None)?;
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(placeholder.with_batches(Arc::new(batches)))
    }

    fn encode_shuffle_read(&self, node: &ShuffleReadExec) -> Result<ShuffleReadNode> {
        let keys = node
            .keys()
            .iter()
            .map(|k| Ok(serialize_physical_expr(k, self)?.encode_to_vec()))
            .collect::<Result<Vec<_>>>()?;
        let source = node.source().map(|source| ShuffleSourceNode {
            producers: source
                .producers
                .iter()
                .map(|p| ShuffleProducerNode {
                    url: p.target.url.clone(),
                    audience: p.target.audience.clone(),
                    label: p.target.label.clone(),
                    plan: p.plan.as_ref().clone(),
                    stage_key: p.stage_key.clone(),
                })
                .collect(),
            partitions: source.partitions.iter().map(|p| *p as u32).collect(),
            readers: source.readers as u32,
        });
        let shard_key_column = match node.kind() {
            ShuffleKind::Hash => None,
            ShuffleKind::ShardAligned { key_column } => Some(key_column as u32),
        };
        Ok(ShuffleReadNode {
            input: node.input() as u32,
            schema: encode_schema(&node.schema())?,
            keys,
            partitions: node.partitions() as u32,
            source,
            shard_key_column,
        })
    }

    fn decode_shuffle_read(
        &self,
        node: ShuffleReadNode,
        ctx: &TaskContext,
    ) -> Result<ShuffleReadExec> {
        let schema = Arc::new(decode_schema(&node.schema)?);
        let keys = node
            .keys
            .iter()
            .map(|bytes| {
                let expr = protobuf::PhysicalExprNode::decode(bytes.as_slice())
                    .map_err(|e| internal_datafusion_err!("cannot decode shuffle key: {e}"))?;
                parse_physical_expr(&expr, ctx, &schema, self)
            })
            .collect::<Result<Vec<_>>>()?;
        let placeholder = match node.shard_key_column {
            None => ShuffleReadExec::placeholder(
                node.input as usize,
                schema,
                keys,
                node.partitions as usize,
            ),
            Some(column) => {
                if column as usize >= schema.fields().len() {
                    return plan_err!("shard-aligned shuffle key column {column} is out of range");
                }
                ShuffleReadExec::shard_aligned(
                    node.input as usize,
                    schema,
                    column as usize,
                    node.partitions as usize,
                )
            }
        };
        let Some(source) = node.source else {
            return Ok(placeholder);
        };
        Ok(placeholder.with_source(ShuffleSource {
            producers: source
                .producers
                .into_iter()
                .map(|p| ShuffleProducer {
                    target: TaskTarget {
                        url: p.url,
                        audience: p.audience,
                        label: p.label,
                    },
                    plan: Arc::new(p.plan),
                    stage_key: p.stage_key,
                })
                .collect(),
            partitions: source.partitions.into_iter().map(|p| p as usize).collect(),
            readers: source.readers as usize,
        }))
    }
}

impl PhysicalExtensionCodec for ShardFusionCodec {
    fn try_decode_udf(
        &self,
        name: &str,
        _buf: &[u8],
    ) -> Result<Arc<datafusion::logical_expr::ScalarUDF>> {
        if name == SHARD_INDEX_FUNCTION {
            return Ok(shard_index_function());
        }
        plan_err!("unknown scalar function {name}")
    }

    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let node = ExtensionNode::decode(buf)
            .map_err(|e| internal_datafusion_err!("cannot decode extension node: {e}"))?;
        match node.kind {
            Some(ExtensionKind::ShardScan(scan)) => {
                if !inputs.is_empty() {
                    return plan_err!("ShardScanExec takes no inputs");
                }
                Ok(Arc::new(self.decode_shard_scan(scan, ctx)?))
            }
            Some(ExtensionKind::Broadcast(broadcast)) => {
                if !inputs.is_empty() {
                    return plan_err!("BroadcastExec takes no inputs");
                }
                Ok(Arc::new(self.decode_broadcast(broadcast)?))
            }
            Some(ExtensionKind::ShuffleRead(shuffle)) => {
                if !inputs.is_empty() {
                    return plan_err!("ShuffleReadExec takes no inputs");
                }
                Ok(Arc::new(self.decode_shuffle_read(shuffle, ctx)?))
            }
            None => plan_err!("unknown ShardFusion extension node"),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let kind = if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
            Some(ExtensionKind::ShardScan(self.encode_shard_scan(scan)?))
        } else if let Some(broadcast) = node.downcast_ref::<BroadcastExec>() {
            Some(ExtensionKind::Broadcast(self.encode_broadcast(broadcast)?))
        } else if let Some(shuffle) = node.downcast_ref::<ShuffleReadExec>() {
            Some(ExtensionKind::ShuffleRead(
                self.encode_shuffle_read(shuffle)?,
            ))
        } else {
            None
        };
        if let Some(kind) = kind {
            let message = ExtensionNode { kind: Some(kind) };
            message
                .encode(buf)
                .map_err(|e| internal_datafusion_err!("cannot encode extension node: {e}"))?;
            return Ok(());
        }
        plan_err!(
            "{} cannot be sent to a worker: ShardFusion's codec does not know it",
            node.name()
        )
    }
}

/// Serializes a plan fragment for a worker. Scalar subqueries the coordinator has already
/// evaluated travel as their values (see [`SubqueryValues`]).
pub fn encode_plan(plan: Arc<dyn ExecutionPlan>) -> Result<Vec<u8>> {
    on_plan_stack(|| {
        Ok(
            datafusion_proto::bytes::physical_plan_to_bytes_with_proto_converter(
                plan,
                &ShardFusionCodec,
                &SubqueryValues,
            )?
            .to_vec(),
        )
    })
}

/// Encodes plans as datafusion-proto does, except that a scalar subquery whose value is known
/// is sent as that value. A `ScalarSubqueryExpr` reads its value from the
/// `ScalarSubqueryExec` above it, which runs every subquery before its input starts: by the
/// time a fragment below it is encoded for a worker, the value is there. A worker has no
/// such ancestor, so the value must travel as a literal. An unevaluated subquery is encoded
/// as is, and the worker refuses it.
struct SubqueryValues;

impl PhysicalProtoConverterExtension for SubqueryValues {
    fn proto_to_execution_plan(
        &self,
        proto: &protobuf::PhysicalPlanNode,
        ctx: &datafusion_proto::physical_plan::PhysicalPlanDecodeContext<'_>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        proto.try_into_physical_plan_with_context(ctx, self)
    }

    fn execution_plan_to_proto(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> Result<protobuf::PhysicalPlanNode> {
        protobuf::PhysicalPlanNode::try_from_physical_plan_with_converter(
            Arc::clone(plan),
            codec,
            self,
        )
    }

    fn proto_to_physical_expr(
        &self,
        proto: &protobuf::PhysicalExprNode,
        input_schema: &Schema,
        ctx: &datafusion_proto::physical_plan::PhysicalPlanDecodeContext<'_>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        datafusion_proto::physical_plan::from_proto::parse_physical_expr_with_converter(
            proto,
            input_schema,
            ctx,
            self,
        )
    }

    fn physical_expr_to_proto(
        &self,
        expr: &Arc<dyn PhysicalExpr>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> Result<protobuf::PhysicalExprNode> {
        if expr.is::<ScalarSubqueryExpr>() {
            let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
            if let Ok(ColumnarValue::Scalar(value)) = expr.evaluate(&empty) {
                let literal: Arc<dyn PhysicalExpr> = Arc::new(Literal::new(value));
                return serialize_physical_expr_with_converter(&literal, codec, self);
            }
        }
        serialize_physical_expr_with_converter(expr, codec, self)
    }
}

/// Deserializes a plan fragment on a worker.
pub fn decode_plan(bytes: &[u8], ctx: &TaskContext) -> Result<Arc<dyn ExecutionPlan>> {
    on_plan_stack(|| {
        datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec(
            bytes,
            ctx,
            &ShardFusionCodec,
        )
    })
}

/// Stack for encoding and decoding a plan: both recurse (in datafusion-proto and prost) once
/// or twice per level of the plan's expressions, up to the coordinator's depth limit
/// (`MAX_EXPRESSION_DEPTH`), more than a 2 MiB Tokio thread holds in a debug build.
const PLAN_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Runs `work` on a fresh stack segment (mapped lazily: only touched pages become resident),
/// whichever thread the call came from.
fn on_plan_stack<T>(work: impl FnOnce() -> T) -> T {
    stacker::grow(PLAN_STACK_BYTES, work)
}

/// Serializes an Arrow schema (as a datafusion-proto `Schema`), e.g. for the catalog.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    let proto = protobuf::Schema::try_from(schema)
        .map_err(|e| internal_datafusion_err!("cannot encode schema: {e}"))?;
    Ok(proto.encode_to_vec())
}

/// Inverse of [`encode_schema`].
pub fn decode_schema(bytes: &[u8]) -> Result<Schema> {
    let proto = protobuf::Schema::decode(bytes)
        .map_err(|e| internal_datafusion_err!("cannot decode schema: {e}"))?;
    Schema::try_from(&proto).map_err(|e| internal_datafusion_err!("cannot decode schema: {e}"))
}
