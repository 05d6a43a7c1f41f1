//! [`NativeStream`]: the batches of one result as they arrive from the coordinator.
//!
//! Python pulls batches one at a time ([`NativeStream::next_batch`], which waits with the GIL
//! released and stops on Ctrl-C), or hands the whole stream to pyarrow as a
//! `RecordBatchReader` ([`NativeStream::to_reader`]) through the Arrow C stream interface:
//! no batch is copied, and none is fetched before the consumer asks for it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow_flight::error::FlightError;
use arrow_pyarrow::{IntoPyArrow, ToPyArrow};
use futures::{Stream, StreamExt};
use pyo3::prelude::*;

use crate::errors::{self, OperationalError};
use crate::runtime::{runtime, wait};

/// Record batches from the server, in order.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, FlightError>> + Send>>;

/// A result being received. It can be read once.
#[pyclass(module = "shardfusion._native")]
pub struct NativeStream {
    schema: SchemaRef,
    /// `None` once read to the end or handed to pyarrow.
    batches: Mutex<Option<BatchStream>>,
}

impl NativeStream {
    pub fn new(schema: SchemaRef, batches: BatchStream) -> Self {
        Self {
            schema,
            batches: Mutex::new(Some(batches)),
        }
    }

    fn take(&self) -> Option<BatchStream> {
        self.batches.lock().ok().and_then(|mut b| b.take())
    }

    fn put_back(&self, stream: BatchStream) {
        if let Ok(mut slot) = self.batches.lock() {
            *slot = Some(stream);
        }
    }
}

#[pymethods]
impl NativeStream {
    /// The result's schema, as a `pyarrow.Schema`.
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.schema.as_ref().to_pyarrow(py)
    }

    /// The next batch as a `pyarrow.RecordBatch`, or `None` at the end.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(mut stream) = self.take() else {
            return Ok(None);
        };
        match wait(py, stream.next())? {
            Some(Ok(batch)) => {
                self.put_back(stream);
                Ok(Some(batch.to_pyarrow(py)?))
            }
            Some(Err(e)) => Err(errors::from_flight(e)),
            None => Ok(None),
        }
    }

    /// Hands the rest of the stream to pyarrow as a `pyarrow.RecordBatchReader`.
    fn to_reader<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let Some(stream) = self.take() else {
            return Err(OperationalError::new_err(
                "this result has already been read; run the query again",
            ));
        };
        let reader: Box<dyn RecordBatchReader + Send> = Box::new(BlockingReader {
            schema: Arc::clone(&self.schema),
            stream,
        });
        reader.into_pyarrow(py)
    }

    /// Stops receiving: the server stops computing the rest of the result.
    fn close(&self) {
        drop(self.take());
    }
}

/// A `RecordBatchReader` over the stream, blocking on the runtime for each batch.
struct BlockingReader {
    schema: SchemaRef,
    stream: BatchStream,
}

impl Iterator for BlockingReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        runtime()
            .block_on(self.stream.next())
            .map(|batch| batch.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl RecordBatchReader for BlockingReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
