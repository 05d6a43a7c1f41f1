//! [`FlightSqlServer`]: the Flight SQL service applications connect to.
//!
//! - `CommandStatementQuery` / prepared statements: the statement is run (side effects) or
//!   planned (queries) in `GetFlightInfo`; the ticket names the stashed result, which `DoGet`
//!   streams. The `FlightInfo` schema is the final output schema of that same plan, so it
//!   always equals the schema of the `DoGet` stream.
//! - `CommandStatementUpdate`: runs the statement and returns the affected row count.
//! - `CommandStatementIngest` (ADBC `adbc_ingest`): see [`crate::statements::bulk_ingest`].
//! - `GetSqlInfo`, `GetCatalogs`, `GetDbSchemas`, `GetTables`, `GetTableTypes`,
//!   `GetXdbcTypeInfo`, and the key commands ([`crate::frontend::metadata_answers`]): metadata
//!   for tools.
//! - Action `shardfusion.register_worker`: a worker joining (needs the cluster secret).
//! - Actions `CancelFlightInfo` and `CancelQuery`: cancel a result not yet fetched or
//!   streaming ([`crate::frontend::stashed_results`]).
//! - Actions `SetSessionOptions`, `GetSessionOptions`, `CloseSession`: a client session's
//!   settings ([`crate::frontend::session_options`]); a call carrying its cookie runs in it.
//!   A call's `grpc-timeout` shortens its statements' `statement_timeout`.
//! - `Handshake`: logging in with a user name and password (HTTP basic credentials); the
//!   answer carries a bearer token in its `authorization` header (and as its payload).
//!
//! Every other call runs as the [`Principal`] that [`crate::frontend::require_login`] found
//! for it. Results and prepared statements belong to the role that made them: another role
//! holding their handle finds nothing.
//!
//! Without a session cookie, each statement text runs in a session of its own, so nothing
//! leaks between the statements of one connection. Open prepared
//! statements are bounded (idle expiry, per-client and global caps): see
//! [`crate::session::prepared_statements`].

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginTransactionRequest, ActionBeginTransactionResult, ActionCancelQueryRequest,
    ActionCancelQueryResult, ActionEndTransactionRequest,
};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use shardfusion_catalog::CatalogSnapshot;
use shardfusion_common::auth::FlightMethod;
use shardfusion_common::wire::{
    ACTION_REGISTER_WORKER, RegisterWorkerRequest, RegisterWorkerResponse,
};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Access, Principal};
use crate::coordinator::Coordinator;
use crate::error::SchedulerError;
use crate::frontend::call_metadata::{credentials, session_cookie};
use crate::frontend::flight_messages::{
    flight_stream, info_for, ipc_schema, one_batch, one_result, parameter_rows,
};
use crate::frontend::flight_transactions;
use crate::frontend::foreign_key_answers::{KeysOf, foreign_keys_batch};
use crate::frontend::metadata_answers::{
    foreign_keys_schema, primary_keys_schema, sql_info, tables_batch, xdbc_type_info,
};
use crate::frontend::primary_key_answers::primary_keys_batch;
use crate::frontend::session_options::{self, is_session_action};
use crate::frontend::stashed_results::{Cancelled, StashedResults};
use crate::session::prepared_statements::{PreparedStatementLimits, PreparedStatements};
use crate::session::statement_call::StatementCall;
use crate::session::statement_context::{DEFAULT_CATALOG, DEFAULT_SCHEMA};
use crate::session::transaction;
use crate::statements::bulk_ingest;

/// Flight's action cancelling the query a `FlightInfo` describes.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

/// The coordinator's Flight SQL service.
#[derive(Clone)]
pub struct FlightSqlServer {
    pub(super) coordinator: Coordinator,
    results: StashedResults,
    pub(super) prepared: PreparedStatements,
}

impl FlightSqlServer {
    /// The service, with prepared-statement limits from the environment
    /// ([`PreparedStatementLimits::from_env`]).
    pub fn new(coordinator: Coordinator) -> Self {
        Self::with_limits(coordinator, PreparedStatementLimits::from_env())
    }

    pub fn with_limits(coordinator: Coordinator, limits: PreparedStatementLimits) -> Self {
        Self {
            coordinator,
            results: StashedResults::default(),
            prepared: PreparedStatements::new(limits),
        }
    }

    /// The open prepared statements.
    pub fn prepared_statements(&self) -> &PreparedStatements {
        &self.prepared
    }

    fn cancel(&self, info: &FlightInfo, principal: &Principal) -> Cancelled {
        let mut outcome = Cancelled::NotCancellable;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let Ok(any) = arrow_flight::sql::Any::decode(ticket.ticket.clone()) else {
                continue;
            };
            let Ok(Some(statement)) = any.unpack::<TicketStatementQuery>() else {
                continue;
            };
            let handle = String::from_utf8_lossy(&statement.statement_handle);
            if self.results.cancel(&handle, principal) == Cancelled::Now {
                outcome = Cancelled::Now;
            }
        }
        outcome
    }

    /// The answer of a metadata command: `batch` of what the caller may see, with `schema`'s
    /// columns.
    fn visible_answer<T>(
        &self,
        request: &Request<T>,
        schema: SchemaRef,
        batch: impl FnOnce(&CatalogSnapshot, &Access<'_>) -> Result<RecordBatch, FlightError>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let principal = self.principal(request)?;
        let snapshot = self.coordinator.cluster().catalog.snapshot();
        let access = principal.access(&snapshot).map_err(Status::from)?;
        Ok(Response::new(one_batch(schema, batch(&snapshot, &access))))
    }

    fn foreign_keys<T>(
        &self,
        request: &Request<T>,
        asked: KeysOf<'_>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.visible_answer(request, foreign_keys_schema(), |snapshot, access| {
            foreign_keys_batch(snapshot, access, asked).map_err(FlightError::from)
        })
    }

    async fn flight_info_for(
        &self,
        call: StatementCall,
        sql: &str,
        params: Vec<ScalarValue>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let output = self
            .coordinator
            .execute_call(&call, sql, params)
            .await
            .map_err(Status::from)?;
        let schema = output.schema();
        let set_cookie = self.kept_session(&call);
        let handle = self.results.stash(output, call.principal);
        let ticket = TicketStatementQuery {
            statement_handle: handle.into_bytes().into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("cannot encode result schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_total_records(-1);
        let mut response = Response::new(info);
        if let Some(cookie) = set_cookie {
            let value = cookie
                .parse()
                .map_err(|_| Status::internal("session cookie is not a header value"))?;
            response.metadata_mut().insert("set-cookie", value);
        }
        Ok(response)
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let cluster = self.coordinator.cluster();
        let roles = Arc::clone(&cluster.catalog.snapshot().roles);
        let credentials = credentials(request.metadata())?;
        // Without credentials, a client of a coordinator that trusts its clients is let in
        // as they are; once logins are required, `login` refuses it.
        if credentials.is_none() && !roles.require_login() {
            let response = HandshakeResponse {
                protocol_version: 0,
                payload: Default::default(),
            };
            return Ok(Response::new(futures::stream::iter([Ok(response)]).boxed()));
        }
        let token = cluster
            .auth
            .login(&roles, credentials)
            .await
            .map_err(Status::from)?;
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("token is not a valid header value"))?;
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.into_bytes().into(),
        };
        let mut response = Response::new(futures::stream::iter([Ok(response)]).boxed());
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let call = self.call_in(&request, query.transaction_id.as_deref())?;
        self.flight_info_for(call, &query.query, Vec::new(), request.into_inner())
            .await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle);
        let call = self.call_prepared(&request, &handle)?;
        let (sql, mut rows) = self
            .prepared
            .sql_and_parameters(&handle, call.principal.name())?;
        if rows.len() > 1 {
            return Err(Status::invalid_argument(format!(
                "a prepared query runs with one row of parameters, and {} rows were bound",
                rows.len()
            )));
        }
        let params = rows.pop().unwrap_or_default();
        self.flight_info_for(call, &sql, params, request.into_inner())
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let principal = self.principal(&request)?;
        let handle = String::from_utf8_lossy(&ticket.statement_handle).to_string();
        let (output, streaming) = self.results.fetch(&handle, &principal).ok_or_else(|| {
            Status::not_found(
                "result not found: each ticket can be fetched once, within 10 minutes, by \
                 the user that ran the statement",
            )
        })?;
        let schema = output.schema();
        let stream = output.into_stream().map_err(Status::from)?;
        let batches = stream.map_err(move |e| {
            // Cancellable until the stream ends.
            let _streaming = &streaming;
            let status: Status = SchedulerError::DataFusion(e).into();
            FlightError::Tonic(Box::new(status))
        });
        Ok(Response::new(flight_stream(schema, batches)))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let call = self.call_in(&request, command.transaction_id.as_deref())?;
        let output = self
            .coordinator
            .execute_call(&call, &command.query, Vec::new())
            .await
            .map_err(Status::from)?;
        Ok(output.affected_rows())
    }

    async fn do_put_prepared_statement_update(
        &self,
        command: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let handle = String::from_utf8_lossy(&command.prepared_statement_handle);
        let call = self.call_prepared(&request, &handle)?;
        let (sql, bound) = self
            .prepared
            .sql_and_parameters(&handle, call.principal.name())?;
        // Parameters come with the update (ADBC), or were bound before it (a DoPut of the
        // query command, as arrow-flight's client does).
        let mut rows = parameter_rows(request.into_inner()).await?;
        if rows.is_empty() {
            rows = bound;
        }
        if rows.is_empty() {
            let output = self
                .coordinator
                .execute_call(&call, &sql, Vec::new())
                .await
                .map_err(Status::from)?;
            return Ok(output.affected_rows());
        }
        // One execution per row of parameters, as Flight SQL asks.
        let mut affected = 0;
        for params in rows {
            let output = self
                .coordinator
                .execute_call(&call, &sql, params)
                .await
                .map_err(Status::from)?;
            affected += output.affected_rows();
        }
        Ok(affected)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let principal = self.principal(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle);
        let rows = parameter_rows(request.into_inner()).await?;
        self.prepared.bind(&handle, principal.name(), rows)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let call = self.call_in(&request, command.transaction_id.as_deref())?;
        let data = request
            .into_inner()
            .map_err(|s| FlightError::Tonic(Box::new(s)));
        // Boxed: the ingest's future is large, and the ones below hold it.
        let ingest = Box::pin(bulk_ingest::ingest(
            &self.coordinator,
            &call.principal,
            &command,
            data,
        ));
        // In the session's open transaction, the rows wait for its COMMIT.
        let idle_limit = (call
            .session
            .as_ref()
            .map(|s| s.settings())
            .unwrap_or_default())
        .over(&self.coordinator.cluster().default_settings())
        .idle_in_transaction_timeout();
        let ingest = transaction::in_session_transaction(call.session.as_ref(), idle_limit, ingest);
        let rows = self
            .coordinator
            .run_bounded(&call, ingest)
            .await
            .map_err(Status::from)?;
        Ok(rows as i64)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let call = self.call_in(&request, query.transaction_id.as_deref())?;
        let principal = call.principal.clone();
        // Planned in the session's open transaction (its tables, its own writes), if any.
        let open = call.session.as_ref().and_then(|s| s.transaction());
        let preparing = self.coordinator.prepare_as(&principal, &query.query);
        let prepared = match transaction::within(open, preparing).await {
            Ok(prepared) => prepared,
            Err(e) => {
                // A statement that fails to prepare fails the session's transaction.
                if let Some(open) = call.session.as_ref().and_then(|s| s.transaction()) {
                    open.fail(&e);
                }
                return Err(e.into());
            }
        };
        let handle = self.prepared.create(
            query.query,
            request.remote_addr(),
            principal.name(),
            query.transaction_id.map(|id| id.to_vec()),
        )?;
        let parameter_schema = if prepared.parameters.fields().is_empty() {
            Default::default()
        } else {
            ipc_schema(&prepared.parameters)?
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: ipc_schema(&prepared.dataset)?,
            parameter_schema,
        })
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        flight_transactions::begin(&self.coordinator, &self.call(&request)?).await
    }

    async fn do_action_end_transaction(
        &self,
        query: ActionEndTransactionRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        flight_transactions::end(&self.coordinator, self.call(&request)?, &query).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let principal = self.principal(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle);
        self.prepared.close(&handle, principal.name());
        Ok(())
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let kind = request.get_ref().r#type.as_str();
        if kind == CANCEL_FLIGHT_INFO {
            let principal = self.principal(&request)?;
            let cancel =
                CancelFlightInfoRequest::decode(request.get_ref().body.clone()).map_err(|e| {
                    Status::invalid_argument(format!("cannot decode CancelFlightInfoRequest: {e}"))
                })?;
            let info = cancel.info.ok_or_else(|| {
                Status::invalid_argument("CancelFlightInfoRequest names no FlightInfo")
            })?;
            let status = match self.cancel(&info, &principal) {
                Cancelled::Now => CancelStatus::Cancelled,
                Cancelled::NotCancellable => CancelStatus::NotCancellable,
            };
            let result = CancelFlightInfoResult {
                status: status as i32,
            };
            return Ok(one_result(result.encode_to_vec()));
        }
        if is_session_action(kind) {
            let principal = self.principal(&request)?;
            let session = session_cookie(request.metadata());
            let answer = session_options::answer(
                self.coordinator.cluster(),
                &principal,
                session.as_deref(),
                kind,
                &request.get_ref().body,
            )?;
            let mut response = Response::new(
                futures::stream::once(async {
                    Ok(arrow_flight::Result {
                        body: answer.body.into(),
                    })
                })
                .boxed(),
            );
            if let Some(cookie) = answer.set_cookie {
                let value = cookie
                    .parse()
                    .map_err(|_| Status::internal("session cookie is not a header value"))?;
                response.metadata_mut().insert("set-cookie", value);
            }
            return Ok(response);
        }
        if kind != ACTION_REGISTER_WORKER {
            self.principal(&request)?;
            return Err(Status::invalid_argument(format!("unknown action {kind:?}")));
        }
        let action = request.get_ref();
        self.coordinator
            .cluster()
            .workers
            .verify_from_worker(
                request.metadata(),
                FlightMethod::DoAction,
                &[action.r#type.as_bytes(), &action.body],
            )
            .map_err(Status::from)?;
        let body = request.into_inner().body;
        let register = RegisterWorkerRequest::decode(body)
            .map_err(|e| Status::invalid_argument(format!("bad registration: {e}")))?;
        let port = u16::try_from(register.node_port)
            .map_err(|_| Status::invalid_argument("node_port out of range"))?;
        let node = self
            .coordinator
            .register_worker(&register.node_name, port, &register.worker_uuid)
            .await
            .map_err(Status::from)?;
        tracing::info!(
            "worker {}:{} registered as node {}",
            node.node_name,
            node.node_port,
            node.node_id
        );
        let response = RegisterWorkerResponse {
            node_id: node.node_id.0,
            group_id: node.group_id.0,
        };
        let result = arrow_flight::Result {
            body: response.encode_to_vec().into(),
        };
        Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let principal = self.principal(&request)?;
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("cannot decode FlightInfo: {e}")))?;
        // `CancelResult`'s values, which arrow-flight does not export; the same as
        // `CancelStatus`'s.
        let result = match self.cancel(&info, &principal) {
            Cancelled::Now => CancelStatus::Cancelled,
            Cancelled::NotCancellable => CancelStatus::NotCancellable,
        };
        Ok(ActionCancelQueryResult {
            result: result as i32,
        })
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(sql_info()).schema();
        info_for(&query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let builder = query.into_builder(sql_info());
        Ok(Response::new(one_batch(builder.schema(), builder.build())))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        info_for(&query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(DEFAULT_CATALOG);
        Ok(Response::new(one_batch(builder.schema(), builder.build())))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        info_for(&query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(DEFAULT_CATALOG, DEFAULT_SCHEMA);
        Ok(Response::new(one_batch(builder.schema(), builder.build())))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        info_for(&query, &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let schema = query.clone().into_builder().schema();
        self.visible_answer(&request, schema, |snapshot, access| {
            tables_batch(snapshot, access, query)
        })
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        info_for(&query, &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        // What GetTables reports: tables, and the metadata and monitoring views.
        builder.append("TABLE");
        builder.append("VIEW");
        Ok(Response::new(one_batch(builder.schema(), builder.build())))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder(xdbc_type_info()).schema();
        info_for(&query, &schema, request.into_inner())
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let builder = query.into_builder(xdbc_type_info());
        Ok(Response::new(one_batch(builder.schema(), builder.build())))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for(&query, &primary_keys_schema(), request.into_inner())
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.visible_answer(&request, primary_keys_schema(), |snapshot, access| {
            primary_keys_batch(snapshot, access, &query).map_err(FlightError::from)
        })
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for(&query, &foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let asked = KeysOf::Exported(&query.table);
        self.foreign_keys(&request, asked)
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for(&query, &foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let asked = KeysOf::Imported(&query.table);
        self.foreign_keys(&request, asked)
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for(&query, &foreign_keys_schema(), request.into_inner())
    }

    async fn do_get_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let asked = KeysOf::Between {
            pk_table: &query.pk_table,
            fk_table: &query.fk_table,
        };
        self.foreign_keys(&request, asked)
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
