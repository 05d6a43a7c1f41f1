//! Flight messages the Flight SQL service sends and reads: answers as Flight data
//! (`flight_stream`, `one_batch`, `no_rows`), `FlightInfo`s of metadata commands, schemas as
//! IPC messages, action results, and the parameter rows a client puts with `DoPut`.

use std::pin::Pin;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::ProstMessageExt;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Response, Status};

use crate::frontend::flight_sql::FlightSqlServer;

/// An action's answer of one result.
pub(super) fn one_result(
    body: Vec<u8>,
) -> Response<<FlightSqlServer as FlightService>::DoActionStream> {
    let result = arrow_flight::Result { body: body.into() };
    Response::new(futures::stream::iter([Ok(result)]).boxed())
}

/// `schema` as an IPC schema message, as Flight SQL carries schemas in its results.
pub(super) fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?;
    Ok(message.0)
}

/// The rows of parameter values a client put (Arrow batches in a `DoPut`), one value per
/// column; none if it sent no batch.
pub(super) async fn parameter_rows(
    stream: PeekableFlightDataStream,
) -> Result<Vec<Vec<ScalarValue>>, Status> {
    // A message with only the command's descriptor (no IPC header) carries no parameters.
    let data = stream
        .try_filter(|data| futures::future::ready(!data.data_header.is_empty()))
        .map_err(|s| FlightError::Tonic(Box::new(s)));
    let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(data)
        .try_collect()
        .await
        .map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            other => Status::invalid_argument(format!("unreadable parameter batches: {other}")),
        })?;
    let mut rows = Vec::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|column| ScalarValue::try_from_array(column, row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Status::invalid_argument(format!("bad parameter value: {e}")))?;
            rows.push(values);
        }
    }
    Ok(rows)
}

/// `batches` as Flight data, announced with `schema`.
pub(super) fn flight_stream(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
) -> Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>> {
    FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            other => Status::internal(other.to_string()),
        })
        .boxed()
}

/// A `FlightInfo` whose one ticket is `command` itself (metadata commands).
pub(super) fn info_for<M: ProstMessageExt>(
    command: &M,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// An answer of one batch (or its error).
pub(super) fn one_batch(
    schema: SchemaRef,
    batch: Result<RecordBatch, FlightError>,
) -> Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>> {
    flight_stream(schema, futures::stream::once(async move { batch }))
}
