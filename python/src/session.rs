//! [`NativeSession`]: one Flight SQL connection to a coordinator.
//!
//! Statements go through `CommandStatementQuery` (queries, DDL, DML and Citus functions
//! alike, as ADBC sends them); bulk loads through `CommandStatementIngest`. Every wait
//! releases the GIL and stops on Ctrl-C, which drops the call and so cancels the statement on
//! the server.

use std::sync::Mutex;
use std::time::Duration;

use arrow::array::RecordBatchReader;
use arrow::ffi_stream::ArrowArrayStreamReader;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use arrow_pyarrow::PyArrowType;
use futures::StreamExt;
use pyo3::prelude::*;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::errors::{self, OperationalError, ProgrammingError};
use crate::runtime::wait;
use crate::stream::NativeStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message accepted from the server (batches are far smaller).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

type Client = FlightSqlServiceClient<Channel>;

/// A connection to a coordinator.
#[pyclass(module = "shardfusion._native")]
pub struct NativeSession {
    url: String,
    client: Mutex<Option<Client>>,
}

impl NativeSession {
    fn client(&self) -> PyResult<Client> {
        self.client
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| OperationalError::new_err("the session is closed"))
    }
}

#[pymethods]
impl NativeSession {
    #[new]
    #[pyo3(signature = (url, user = None, password = None))]
    fn new(
        py: Python<'_>,
        url: &str,
        user: Option<String>,
        password: Option<String>,
    ) -> PyResult<Self> {
        let endpoint = endpoint(url)?;
        let target = url.to_string();
        let client = wait(py, async move {
            let channel = endpoint.connect().await.map_err(|e| {
                OperationalError::new_err(format!("cannot connect to {target}: {e}"))
            })?;
            let inner = arrow_flight::flight_service_client::FlightServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            let mut client = FlightSqlServiceClient::new_from_inner(inner);
            if let Some(user) = user {
                client
                    .handshake(&user, password.as_deref().unwrap_or_default())
                    .await
                    .map_err(errors::from_flight)?;
            }
            Ok::<_, PyErr>(client)
        })??;
        Ok(Self {
            url: url.to_string(),
            client: Mutex::new(Some(client)),
        })
    }

    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` and returns its result as a stream; rows are fetched as they are read.
    fn execute(&self, py: Python<'_>, sql: String) -> PyResult<NativeStream> {
        let mut client = self.client()?;
        wait(py, async move {
            let info = client
                .execute(sql, None)
                .await
                .map_err(errors::from_flight)?;
            let schema = std::sync::Arc::new(
                info.clone()
                    .try_decode_schema()
                    .map_err(|e| OperationalError::new_err(format!("bad result schema: {e}")))?,
            );
            let mut streams = Vec::with_capacity(info.endpoint.len());
            for endpoint in info.endpoint {
                let Some(ticket) = endpoint.ticket else {
                    continue;
                };
                let stream = client.do_get(ticket).await.map_err(errors::from_flight)?;
                streams.push(stream);
            }
            let batches = futures::stream::iter(streams).flatten().boxed();
            Ok::<_, PyErr>(NativeStream::new(schema, batches))
        })?
    }

    /// Loads every batch of `data` (anything exporting the Arrow C stream interface) into
    /// `table`: `mode` is "append" (the table must exist), "create" (it must not) or
    /// "replace" (new rows replace the old ones at once). Returns the rows loaded.
    ///
    /// Batches of any size load: `execute_ingest` encodes with arrow-flight's
    /// `FlightDataEncoder`, which splits every batch into messages of about 2 MiB, far under
    /// the coordinator's 256 MiB message limit.
    #[pyo3(signature = (table, data, mode = "append"))]
    fn ingest(
        &self,
        py: Python<'_>,
        table: String,
        data: PyArrowType<ArrowArrayStreamReader>,
        mode: &str,
    ) -> PyResult<i64> {
        let (if_not_exist, if_exists) = match mode {
            "append" => (TableNotExistOption::Fail, TableExistsOption::Append),
            "create" => (TableNotExistOption::Create, TableExistsOption::Fail),
            "replace" => (TableNotExistOption::Create, TableExistsOption::Replace),
            other => {
                return Err(ProgrammingError::new_err(format!(
                    "unknown ingest mode {other:?}: use \"append\", \"create\" or \"replace\""
                )));
            }
        };
        let command = CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: if_not_exist.into(),
                if_exists: if_exists.into(),
            }),
            table,
            schema: None,
            catalog: None,
            temporary: false,
            transaction_id: None,
            options: Default::default(),
        };
        let reader = data.0;
        let schema = reader.schema();
        // The source may be Python-backed: read it on its own thread, which takes the GIL
        // when it needs it while this one waits without it.
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<_, FlightError>>(4);
        std::thread::spawn(move || {
            for batch in reader {
                let item = batch.map_err(FlightError::Arrow);
                let failed = item.is_err();
                if sender.blocking_send(item).is_err() || failed {
                    break;
                }
            }
        });
        let mut batches = ReceiverStream::new(receiver).peekable();
        let mut client = self.client()?;
        wait(py, async move {
            // An empty source still creates or checks the table: send its schema.
            if std::pin::Pin::new(&mut batches).peek().await.is_none() {
                let empty = arrow::array::RecordBatch::new_empty(schema);
                let stream = futures::stream::iter([Ok(empty)]);
                return client.execute_ingest(command, stream).await;
            }
            client.execute_ingest(command, batches).await
        })?
        .map_err(errors::from_flight)
    }

    /// Closes the connection; later calls fail.
    fn close(&self) {
        if let Ok(mut client) = self.client.lock() {
            client.take();
        }
    }
}

fn endpoint(url: &str) -> PyResult<Endpoint> {
    let http = if let Some(rest) = url.strip_prefix("grpc://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("grpc+tcp://") {
        format!("http://{rest}")
    } else if url.starts_with("grpc+tls://") || url.starts_with("https://") {
        return Err(OperationalError::new_err(
            "TLS connections are not supported yet: use grpc://host:port",
        ));
    } else {
        return Err(ProgrammingError::new_err(format!(
            "{url:?} is not a Flight SQL URL: use grpc://host:port"
        )));
    };
    Ok(Endpoint::from_shared(http)
        .map_err(|e| ProgrammingError::new_err(format!("bad URL {url:?}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true))
}
