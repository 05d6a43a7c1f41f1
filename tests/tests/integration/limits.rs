//! Limits and cancellation, as a Flight SQL client sees them (issue 13, "Limits",
//! "Cancellation", "Session options"):
//! - `statement_timeout` (per statement text with `SET`, per session, per call with the gRPC
//!   deadline) ends a runaway statement with `DeadlineExceeded` (57014), changes nothing, and
//!   the server keeps serving;
//! - a query over its memory limit fails with `ResourceExhausted` (53200), on the coordinator
//!   or on a worker, and the same query without the limit succeeds;
//! - with every statement slot taken, statements wait in the queue (within their timeout),
//!   and a full queue refuses with `ResourceExhausted` (53300);
//! - `CancelFlightInfo` and `CancelQuery` stop a streaming query, on every worker, within a
//!   second;
//! - `SetSessionOptions`/`GetSessionOptions`/`CloseSession` keep settings per session, and a
//!   `SET` in a session lasts for the session.

use std::time::{Duration, Instant};

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{ActionCancelQueryRequest, ActionCancelQueryResult, Any, ProstMessageExt};
use arrow_flight::{Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};
use futures::TryStreamExt;
use prost::Message;
use shardfusion_scheduler::frontend::session_messages::{
    GetSessionOptionsResult, OptionValue, SessionOptionValue, SetSessionOptionsRequest,
    SetSessionOptionsResult,
};
use shardfusion_scheduler::limits::server_limits::ServerLimits;
use shardfusion_tests::conflict::sqlstate;
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

/// A query that runs for minutes unless stopped: a billion-row `generate_series`.
const RUNAWAY: &str = "SELECT sum(value) FROM generate_series(1, 1000000000000)";

/// Waits (at most 30 s) until `condition` holds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn raw_client(cluster: &TestCluster) -> FlightServiceClient<tonic::transport::Channel> {
    let channel =
        tonic::transport::Channel::from_shared(cluster.url.replacen("grpc://", "http://", 1))
            .expect("url")
            .connect()
            .await
            .expect("connect");
    FlightServiceClient::new(channel)
}

/// A 2-worker cluster running at most `running` statements, with `queued` more waiting.
async fn cluster_with_slots(running: usize, queued: usize) -> TestCluster {
    TestCluster::start_with(2, |options| {
        options.limits = ServerLimits {
            max_running: running,
            max_queued: queued,
            ..Default::default()
        };
    })
    .await
}

/// A table `big` (k, v) of `rows` rows, hash-distributed by k, v = k % 10.
async fn big_table(client: &mut TestClient, rows: u64) {
    client
        .run("CREATE TABLE big (k bigint NOT NULL, v bigint NOT NULL)")
        .await;
    client
        .run(&format!(
            "INSERT INTO big SELECT value, value % 10 FROM generate_series(1, {rows})"
        ))
        .await;
    client
        .run("SELECT create_distributed_table('big', 'k')")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_ends_a_runaway_query_and_the_server_keeps_serving() {
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    let started = Instant::now();
    let status = client
        .query(&format!("SET statement_timeout = '1s'; {RUNAWAY}"))
        .await
        .expect_err("an error");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(sqlstate(&status), Some("57014"), "{status:?}");
    assert!(
        status.message().contains("statement timeout"),
        "{}",
        status.message()
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    // Without a session, the SET lasted for its own text only.
    assert_eq!(client.scalar("SHOW statement_timeout").await, "0");
    assert_eq!(
        client
            .scalar("SELECT count(*) FROM generate_series(1, 1000)")
            .await,
        "1000"
    );
    let admission = cluster.coordinator().cluster().admission();
    eventually("the slot is given back", || admission.running() == 0).await;

    // A bad setting is refused with the name and what it takes.
    let status = client
        .query("SET statement_timeout = 'soon'")
        .await
        .expect_err("an error");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(sqlstate(&status), Some("22023"));
    let status = client
        .query("SHOW no_such_setting")
        .await
        .expect_err("an error");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_grpc_deadline_changes_nothing() {
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    client.run("CREATE TABLE sink (x bigint)").await;
    client
        .run("SELECT create_distributed_table('sink', 'x')")
        .await;
    // An INSERT of a trillion rows, with a client deadline of one second.
    let command = arrow_flight::sql::CommandStatementUpdate {
        query: "INSERT INTO sink SELECT value FROM generate_series(1, 1000000000000)".into(),
        transaction_id: None,
    };
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    let data = arrow_flight::FlightData {
        flight_descriptor: Some(descriptor),
        ..Default::default()
    };
    let mut request = tonic::Request::new(futures::stream::iter([data]));
    request.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let outcome = raw_client(&cluster).await.do_put(request).await;
    let status = match outcome {
        Ok(response) => response
            .into_inner()
            .try_collect::<Vec<_>>()
            .await
            .expect_err("the INSERT cannot finish in a second"),
        Err(status) => status,
    };
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let admission = cluster.coordinator().cluster().admission();
    eventually("the statement ends on the server", || {
        admission.running() == 0
    })
    .await;
    assert_eq!(client.scalar("SELECT count(*) FROM sink").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_memory_limit_fails_alone() {
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    big_table(&mut client, 200_000).await;
    let mut other = cluster.client().await;

    // On the workers: the partial array_agg of 100,000 rows per worker needs more than 64 KiB.
    let query = "SELECT array_length(array_agg(k), 1) FROM big";
    let status = client
        .query(&format!(
            "SET datafusion.runtime.memory_limit = '64K'; {query}"
        ))
        .await
        .expect_err("an error");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(sqlstate(&status), Some("53200"), "{status:?}");
    // Another client, and the same query without the limit, are unaffected.
    assert_eq!(other.scalar(query).await, "200000");
    assert_eq!(client.scalar(query).await, "200000");

    // Through a shuffle between workers (a GROUP BY on another column than the distribution
    // column): the worker's verdict keeps its code and SQLSTATE on the way.
    let status = client
        .query(
            "SET datafusion.runtime.memory_limit = '256K'; \
             SELECT k % 100000 AS g, count(*), sum(v) FROM big GROUP BY g ORDER BY g",
        )
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(sqlstate(&status), Some("53200"), "{status:?}");

    // On the coordinator: a query over no table.
    let status = client
        .query(
            "SET datafusion.runtime.memory_limit = '1M'; \
             SELECT array_length(array_agg(value), 1) FROM generate_series(1, 1000000)",
        )
        .await
        .expect_err("an error");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        client
            .scalar("SELECT array_length(array_agg(value), 1) FROM generate_series(1, 1000000)")
            .await,
        "1000000"
    );
    assert_eq!(cluster.running_fragments(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_wait_for_a_slot_and_a_full_queue_refuses() {
    let cluster = cluster_with_slots(1, 1).await;
    let admission = cluster.coordinator().cluster().admission();
    // A runaway query holds the only slot while it streams.
    let url = cluster.url.clone();
    let runaway = tokio::spawn(async move {
        let mut client = TestClient::connect(&url).await;
        client.query(RUNAWAY).await
    });
    eventually("the runaway query streams", || admission.running() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(admission.running(), 1, "the runaway query holds the slot");

    // The next statement waits in the queue until its timeout.
    let mut client = cluster.client().await;
    let started = Instant::now();
    let status = client
        .query("SET statement_timeout = '300ms'; SELECT 1")
        .await
        .expect_err("an error");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // One waits without a timeout; the queue (of one) is full, so the next is refused.
    let url = cluster.url.clone();
    let waiting = tokio::spawn(async move {
        let mut client = TestClient::connect(&url).await;
        client.scalar("SELECT 42").await
    });
    eventually("a statement waits", || admission.queued() == 1).await;
    let status = client.query("SELECT 2").await.expect_err("an error");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(sqlstate(&status), Some("53300"), "{status:?}");
    // Bulk ingest takes a slot like any statement.
    let batch = arrow::array::RecordBatch::try_from_iter([(
        "x",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![1_i64])) as arrow::array::ArrayRef,
    )])
    .expect("batch");
    let status = client
        .ingest("anything", futures::stream::iter([Ok(batch)]))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // The runaway's client goes away: its slot goes to the waiting statement.
    runaway.abort();
    let answer = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiting statement runs once the slot is free")
        .expect("task");
    assert_eq!(answer, "42");
    eventually("every slot is free", || admission.running() == 0).await;
    assert_eq!(client.scalar("SELECT 3").await, "3");
}

/// Starts a query that keeps the workers busy, and fetches it in the background.
async fn busy_query(
    cluster: &TestCluster,
    client: &mut TestClient,
) -> (
    arrow_flight::FlightInfo,
    tokio::task::JoinHandle<Result<usize, tonic::Status>>,
) {
    // Every row of `big` meets a tenth of the others: 4 * 10^9 joined rows.
    let info = client
        .flight_sql()
        .execute(
            "SELECT count(*) FROM big a JOIN big b ON a.v = b.v".into(),
            None,
        )
        .await
        .expect("planned");
    let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
    let mut fetcher = cluster.client().await;
    let fetch = tokio::spawn(async move {
        let stream = fetcher
            .flight_sql()
            .do_get(ticket)
            .await
            .map_err(|e| tonic::Status::unknown(e.to_string()))?;
        let batches: Vec<_> = stream.try_collect().await.map_err(|e| match e {
            arrow_flight::error::FlightError::Tonic(status) => *status,
            other => tonic::Status::unknown(other.to_string()),
        })?;
        Ok(batches.len())
    });
    eventually("the workers run the query", || {
        cluster.running_fragments() > 0
    })
    .await;
    (info, fetch)
}

async fn expect_cancelled(
    cluster: &TestCluster,
    fetch: tokio::task::JoinHandle<Result<usize, tonic::Status>>,
    since: Instant,
) {
    let status = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .expect("the fetch ends")
        .expect("task")
        .expect_err("a cancelled query returns no result");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert_eq!(sqlstate(&status), Some("57014"), "{status:?}");
    eventually("the workers stop", || cluster.running_fragments() == 0).await;
    let took = since.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the workers stopped {took:?} after the cancel"
    );
    println!("workers stopped {took:?} after the cancel");
}

/// Sends `CancelFlightInfo`; returns the status it answered.
async fn cancel_flight_info(client: &mut TestClient, request: &CancelFlightInfoRequest) -> i32 {
    let mut answers = client
        .flight_sql()
        .do_action(Action::new("CancelFlightInfo", request.encode_to_vec()))
        .await
        .expect("cancel");
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one result");
    CancelFlightInfoResult::decode(answer.body)
        .expect("decode")
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_flight_info_and_cancel_query_stop_the_query_on_every_worker() {
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    big_table(&mut client, 40_000).await;

    let (info, fetch) = busy_query(&cluster, &mut client).await;
    let cancelled = Instant::now();
    let request = CancelFlightInfoRequest::new(info.clone());
    assert_eq!(
        cancel_flight_info(&mut client, &request).await,
        CancelStatus::Cancelled as i32
    );
    expect_cancelled(&cluster, fetch, cancelled).await;
    // Cancelling it again: nothing left to cancel.
    assert_eq!(
        cancel_flight_info(&mut client, &request).await,
        CancelStatus::NotCancellable as i32
    );

    // The older CancelQuery action.
    let (info, fetch) = busy_query(&cluster, &mut client).await;
    let cancelled = Instant::now();
    let request = ActionCancelQueryRequest {
        info: info.encode_to_vec().into(),
    };
    let mut answers = client
        .flight_sql()
        .do_action(Action::new("CancelQuery", request.as_any().encode_to_vec()))
        .await
        .expect("cancel");
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one result");
    let result: ActionCancelQueryResult = Any::decode(answer.body)
        .expect("any")
        .unpack()
        .expect("unpack")
        .expect("a result");
    assert_eq!(result.result, CancelStatus::Cancelled as i32);
    expect_cancelled(&cluster, fetch, cancelled).await;

    // The server goes on serving.
    assert_eq!(client.scalar("SELECT count(*) FROM big").await, "40000");
}

/// Runs a session action with the `cookie` given; returns its answer and the cookie set.
async fn session_action(
    cluster: &TestCluster,
    kind: &str,
    body: Vec<u8>,
    cookie: Option<&str>,
) -> Result<(Vec<u8>, Option<String>), tonic::Status> {
    let mut request = tonic::Request::new(Action::new(kind, body));
    if let Some(cookie) = cookie {
        request
            .metadata_mut()
            .insert("cookie", cookie.parse().expect("ascii"));
    }
    let response = raw_client(cluster).await.do_action(request).await?;
    let set_cookie = cookie_set(response.metadata());
    let mut results = response.into_inner();
    let result = results.message().await?.expect("one result");
    Ok((result.body.to_vec(), set_cookie))
}

fn text(value: &str) -> SessionOptionValue {
    SessionOptionValue {
        option_value: Some(OptionValue::StringValue(value.into())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_options_and_set_last_for_the_session() {
    let cluster = TestCluster::start(2).await;
    let request = SetSessionOptionsRequest {
        session_options: [
            ("statement_timeout".to_string(), text("750ms")),
            ("citus.shard_count".to_string(), text("4")),
            ("no_such_option".to_string(), text("1")),
        ]
        .into(),
    };
    let (body, cookie) =
        session_action(&cluster, "SetSessionOptions", request.encode_to_vec(), None)
            .await
            .expect("set");
    let errors = SetSessionOptionsResult::decode(body.as_slice())
        .expect("decode")
        .errors;
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["no_such_option"],
        "only the unknown option is refused"
    );
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.starts_with("arrow_flight_session_id="), "{cookie}");

    // Statements sent with the cookie run in the session.
    let mut client = cluster.client().await;
    client.flight_sql().set_header("cookie", cookie.clone());
    assert_eq!(client.scalar("SHOW statement_timeout").await, "750ms");
    let status = client.query(RUNAWAY).await.expect_err("an error");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    client.run("CREATE TABLE tenants (id bigint)").await;
    client
        .run("SELECT create_distributed_table('tenants', 'id')")
        .await;
    assert_eq!(
        client
            .scalar("SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'tenants'")
            .await,
        "4",
        "citus.shard_count of the session"
    );
    // SET in the session lasts for the session; without the cookie, nothing changed.
    client.run("SET statement_timeout = '5min'").await;
    assert_eq!(client.scalar("SHOW statement_timeout").await, "300s");
    let mut outsider = cluster.client().await;
    assert_eq!(outsider.scalar("SHOW statement_timeout").await, "0");

    let (body, _) = session_action(&cluster, "GetSessionOptions", Vec::new(), Some(&cookie))
        .await
        .expect("get");
    let options = GetSessionOptionsResult::decode(body.as_slice())
        .expect("decode")
        .session_options;
    assert_eq!(options["statement_timeout"], text("300s"));
    assert_eq!(
        options["citus.shard_count"],
        SessionOptionValue {
            option_value: Some(OptionValue::Int64Value(4))
        }
    );

    session_action(&cluster, "CloseSession", Vec::new(), Some(&cookie))
        .await
        .expect("close");
    let status = session_action(&cluster, "GetSessionOptions", Vec::new(), Some(&cookie))
        .await
        .expect_err("an error");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // A closed session's cookie fails its next statement once, as a dropped connection
    // would (a client in a transaction must learn it is gone); the session is then opened
    // again, empty, under the same cookie.
    let message = client
        .expect_error("SHOW statement_timeout", Code::FailedPrecondition)
        .await;
    assert!(message.contains("your session ended"), "{message}");
    assert_eq!(client.scalar("SHOW statement_timeout").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_slot_at_the_deadline() {
    let cluster = cluster_with_slots(1, 0).await;
    let admission = cluster.coordinator().cluster().admission();
    let mut reader = cluster.client().await;
    let mut rows = reader
        .stream(
            "SET statement_timeout = '1s'; \
             SELECT value FROM generate_series(1, 1000000000000)",
        )
        .await
        .expect("started");
    use futures::StreamExt;
    rows.next().await.expect("a batch").expect("rows");
    assert_eq!(admission.running(), 1);
    // The reader stops reading but keeps its stream open: at the deadline, the slot is free.
    eventually("the stalled query gives its slot back", || {
        admission.running() == 0
    })
    .await;
    let mut other = cluster.client().await;
    assert_eq!(other.scalar("SELECT 1").await, "1");
    drop(rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_create_table_as_leaves_no_table() {
    let cluster = TestCluster::start(2).await;
    let mut client = cluster.client().await;
    let status = client
        .query(
            "SET statement_timeout = '500ms'; \
             CREATE TABLE copied AS SELECT value FROM generate_series(1, 1000000000000)",
        )
        .await
        .expect_err("stopped");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.query("SELECT count(*) FROM copied").await {
            Err(status) if status.code() == Code::NotFound => break,
            other => {
                assert!(Instant::now() < deadline, "the table stays: {other:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// The `name=value` of the cookie an answer sets, if any.
fn cookie_set(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

/// Plans `sql` with `GetFlightInfo` (no cookie sent); returns the session cookie it set.
async fn info_cookie(cluster: &TestCluster, sql: &str) -> Result<Option<String>, tonic::Status> {
    let command = arrow_flight::sql::CommandStatementQuery {
        query: sql.to_string(),
        transaction_id: None,
    };
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    let response = raw_client(cluster)
        .await
        .get_flight_info(descriptor)
        .await?;
    Ok(cookie_set(response.metadata()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_successful_set_opens_or_changes_a_session() {
    let cluster = TestCluster::start(1).await;
    assert_eq!(
        info_cookie(&cluster, "SHOW statement_timeout")
            .await
            .expect("show"),
        None
    );
    assert!(
        info_cookie(
            &cluster,
            "SET statement_timeout = '7s'; SELECT * FROM missing"
        )
        .await
        .is_err()
    );
    let cookie = info_cookie(&cluster, "SET statement_timeout = '7s'")
        .await
        .expect("set")
        .expect("a session cookie");
    let mut client = cluster.client().await;
    client.flight_sql().set_header("cookie", cookie);
    assert_eq!(client.scalar("SHOW statement_timeout").await, "7s");
    // A text that fails changes nothing, SET included.
    client
        .query("SET statement_timeout = '9s'; SELECT * FROM missing")
        .await
        .expect_err("fails");
    assert_eq!(client.scalar("SHOW statement_timeout").await, "7s");
}

/// What psql, JDBC, SQLAlchemy and Citus scripts set on connecting is accepted with the values
/// ShardFusion honours, shown back by `SHOW`; any other value is refused with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_citus_settings_take_the_values_shardfusion_honours() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client().await;
    for sql in [
        "SET search_path TO public",
        "SET search_path = \"$user\", public",
        "SET TimeZone = 'UTC'",
        "SET TIME ZONE 'Etc/UTC'",
        "SET timezone TO 'GMT'",
        "SET citus.shard_replication_factor = 1",
        "RESET search_path",
    ] {
        c.run(sql).await;
    }
    assert_eq!(c.scalar("SHOW search_path").await, "\"$user\", public");
    assert_eq!(c.scalar("SHOW TimeZone").await, "UTC");
    assert_eq!(c.scalar("SHOW TIME ZONE").await, "UTC");
    assert_eq!(c.scalar("SHOW citus.shard_replication_factor").await, "1");
    for (sql, code, state) in [
        (
            "SET search_path TO app, public",
            Code::InvalidArgument,
            "3F000",
        ),
        (
            "SET search_path TO pg_catalog",
            Code::InvalidArgument,
            "22023",
        ),
        (
            "SET TimeZone = 'Europe/Amsterdam'",
            Code::Unimplemented,
            "0A000",
        ),
        (
            "SET citus.shard_replication_factor = 2",
            Code::Unimplemented,
            "0A000",
        ),
    ] {
        let status = c.query(sql).await.expect_err(sql);
        assert_eq!(status.code(), code, "{sql}: {status:?}");
        assert_eq!(sqlstate(&status), Some(state), "{sql}: {status:?}");
    }
}
