//! [`TestClient`]: a Flight SQL client returning batches or the gRPC status, for tests and
//! benchmarks.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tonic::transport::Channel;
use tonic::{Code, Status};

pub struct TestClient {
    inner: FlightSqlServiceClient<Channel>,
}

fn to_status(error: arrow_flight::error::FlightError) -> Status {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => *status,
        other => Status::unknown(other.to_string()),
    }
}

impl TestClient {
    pub async fn connect(url: &str) -> Self {
        let http = url.replacen("grpc://", "http://", 1);
        let channel = Channel::from_shared(http)
            .expect("url")
            .connect()
            .await
            .expect("connect to coordinator");
        Self {
            inner: FlightSqlServiceClient::new(channel),
        }
    }

    /// Runs `sql` through `CommandStatementQuery` and fetches all batches.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<RecordBatch>, Status> {
        Ok(self.query_with_schema(sql).await?.1)
    }

    /// Like [`TestClient::query`], with the schema the server announced (known even when no
    /// rows come back). Asserts that every streamed batch has exactly that schema.
    pub async fn query_with_schema(
        &mut self,
        sql: &str,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
        let info = self
            .inner
            .execute(sql.to_string(), None)
            .await
            .map_err(to_status)?;
        let schema: SchemaRef = Arc::new(
            info.clone()
                .try_decode_schema()
                .map_err(|e| Status::internal(format!("bad schema: {e}")))?,
        );
        let mut out = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else {
                continue;
            };
            let stream = self.inner.do_get(ticket).await.map_err(to_status)?;
            let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| match e {
                arrow_flight::error::FlightError::Tonic(s) => *s,
                other => Status::unknown(other.to_string()),
            })?;
            for batch in &batches {
                assert_eq!(
                    batch.schema().fields(),
                    schema.fields(),
                    "{sql}: the DoGet stream's schema must equal the FlightInfo schema"
                );
            }
            out.extend(batches);
        }
        Ok((schema, out))
    }

    /// Prepares `sql`, then executes the prepared statement; returns the schema announced at
    /// preparation and the rows.
    pub async fn prepared(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
        let mut statement = self
            .inner
            .prepare(sql.to_string(), None)
            .await
            .map_err(to_status)?;
        let schema = Arc::new(statement.dataset_schema().map_err(to_status)?.clone());
        let info = statement.execute().await.map_err(to_status)?;
        let mut out = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else {
                continue;
            };
            let stream = self.inner.do_get(ticket).await.map_err(to_status)?;
            let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(to_status)?;
            out.extend(batches);
        }
        statement.close().await.map_err(to_status)?;
        Ok((schema, out))
    }

    /// Runs `sql` through `CommandStatementUpdate`; returns the affected row count.
    pub async fn update(&mut self, sql: &str) -> Result<i64, Status> {
        self.inner
            .execute_update(sql.to_string(), None)
            .await
            .map_err(to_status)
    }

    /// Runs `sql`, panicking with the server's message if it fails.
    pub async fn run(&mut self, sql: &str) -> Vec<RecordBatch> {
        match self.query(sql).await {
            Ok(batches) => batches,
            Err(status) => panic!("{sql}\nfailed: {:?} {}", status.code(), status.message()),
        }
    }

    /// Runs `sql`, expecting it to fail with `code`; returns the message.
    pub async fn expect_error(&mut self, sql: &str, code: Code) -> String {
        match self.query(sql).await {
            Ok(_) => panic!("{sql}\nsucceeded, expected {code:?}"),
            Err(status) => {
                assert_eq!(status.code(), code, "{sql}: {}", status.message());
                status.message().to_string()
            }
        }
    }

    /// The single value of a one-row, one-column result, as text.
    pub async fn scalar(&mut self, sql: &str) -> String {
        let batches = self.run(sql).await;
        let batch = batches.iter().find(|b| b.num_rows() > 0).expect("a row");
        arrow::util::display::array_value_to_string(batch.column(0), 0).expect("format")
    }
}
