//! Turning the Flight messages a task answers with into the record batches of its plan: one
//! decoder for every transport.

use std::sync::Arc;

use arrow_flight::FlightData;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::peer_channel::worker_status;
use super::task_report::{frame_report, is_report_frame};
use super::transport::WireMeter;
use crate::status::from_status;

/// The batches in `frames` (a `DoGet` answer from worker `label`), in `schema`; each message's
/// size goes to `meter`, and so does the report the answer ends with. A failed call is
/// reported naming the worker.
pub fn answer_batches(
    frames: BoxStream<'static, std::result::Result<FlightData, tonic::Status>>,
    label: String,
    schema: SchemaRef,
    meter: WireMeter,
) -> SendableRecordBatchStream {
    let frames = frames.filter_map(move |frame| {
        let frame = match frame {
            Ok(frame) if is_report_frame(&frame) => {
                if let Some(report) = frame_report(&frame) {
                    (meter.report)(report);
                }
                None
            }
            Ok(frame) => {
                (meter.message)(frame.data_header.len() + frame.data_body.len());
                Some(Ok(frame))
            }
            Err(status) => Some(Err(FlightError::Tonic(Box::new(worker_status(
                &label, status,
            ))))),
        };
        futures::future::ready(frame)
    });
    let out_schema = Arc::clone(&schema);
    let batches =
        FlightRecordBatchStream::new_from_flight_data(frames).map(move |batch| match batch {
            Ok(batch) => restamp(batch, &out_schema),
            Err(FlightError::Tonic(status)) => Err(from_status(*status)),
            Err(other) => Err(from_status(tonic::Status::internal(other.to_string()))),
        });
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}

/// `batch` under `schema`: the same columns, with the names, nullability and metadata the plan
/// declared (Arrow IPC carries the sender's).
pub fn restamp(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        batch.columns().to_vec(),
        &options,
    )?)
}
