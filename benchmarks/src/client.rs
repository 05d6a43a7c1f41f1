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
        Self::try_connect(url)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Connects to the coordinator at `url` (`grpc://host:port`).
    pub async fn try_connect(url: &str) -> Result<Self, String> {
        Self::try_connect_tls(url, None).await
    }

    /// Connects to `url`; a `grpc+tls://` URL over TLS, trusting `tls`'s authority.
    pub async fn try_connect_tls(
        url: &str,
        tls: Option<&shardfusion_common::tls::ClusterTls>,
    ) -> Result<Self, String> {
        let http = url
            .replacen("grpc+tls://", "https://", 1)
            .replacen("grpc://", "http://", 1);
        let mut endpoint = Channel::from_shared(http).map_err(|e| format!("bad URL {url}: {e}"))?;
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls.client_config())
                .map_err(|e| format!("cannot set up TLS to {url}: {e}"))?;
        }
        let channel = endpoint
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        Ok(Self {
            inner: FlightSqlServiceClient::new(channel),
        })
    }

    /// Connects to `url` and logs in as `user` (the Flight SQL handshake); later calls carry
    /// the bearer token it returned.
    pub async fn connect_as(url: &str, user: &str, password: &str) -> Result<Self, String> {
        let mut client = Self::try_connect(url).await?;
        client
            .inner
            .handshake(user, password)
            .await
            .map_err(|e| format!("cannot log in as {user}: {e}"))?;
        Ok(client)
    }

    /// Appends `batches` to `table` through Flight SQL bulk ingest (`CommandStatementIngest`);
    /// returns the rows loaded.
    pub async fn ingest<S>(&mut self, table: &str, batches: S) -> Result<i64, Status>
    where
        S: futures::Stream<Item = Result<RecordBatch, arrow_flight::error::FlightError>>
            + Send
            + 'static,
    {
        use arrow_flight::sql::{
            CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
        };
        let command = CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: TableNotExistOption::Fail.into(),
                if_exists: TableExistsOption::Append.into(),
            }),
            table: table.to_string(),
            schema: None,
            catalog: None,
            temporary: false,
            transaction_id: None,
            options: Default::default(),
        };
        self.inner
            .execute_ingest(command, batches)
            .await
            .map_err(to_status)
    }

    /// The underlying Flight SQL client, for calls the helpers here do not make.
    pub fn flight_sql(&mut self) -> &mut FlightSqlServiceClient<Channel> {
        &mut self.inner
    }

    /// Opens a client session (Flight's `SetSessionOptions` with no options) and sends its
    /// cookie on every later call, as ADBC's cookie middleware does: `SET`s and an open
    /// transaction then last from one call to the next.
    pub async fn open_session(&mut self) -> Result<(), Status> {
        let action = arrow_flight::Action::new("SetSessionOptions", Vec::<u8>::new());
        let mut request = tonic::Request::new(action);
        if let Some(token) = self.inner.token() {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("a token that is no header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        let response = self.inner.inner_mut().do_action(request).await?;
        let cookie = response
            .metadata()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_string)
            .ok_or_else(|| Status::internal("SetSessionOptions set no session cookie"))?;
        let mut results = response.into_inner();
        while results.message().await?.is_some() {}
        self.inner.set_header("cookie", cookie);
        Ok(())
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

    /// Runs `sql` and returns its batches as they arrive, without collecting them.
    pub async fn stream(
        &mut self,
        sql: &str,
    ) -> Result<
        futures::stream::BoxStream<'static, Result<RecordBatch, arrow_flight::error::FlightError>>,
        Status,
    > {
        use futures::StreamExt;
        let info = self
            .inner
            .execute(sql.to_string(), None)
            .await
            .map_err(to_status)?;
        let mut streams = Vec::new();
        for endpoint in info.endpoint {
            if let Some(ticket) = endpoint.ticket {
                streams.push(self.inner.do_get(ticket).await.map_err(to_status)?);
            }
        }
        Ok(futures::stream::iter(streams).flatten().boxed())
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
