//! Hostile bytes never crash a server (issue 13, "Hostile input"): random and mutated Flight
//! SQL tickets, commands and actions against a running coordinator, and random and mutated
//! plan fragments and task tickets against a worker's decoder. Every input must get an
//! answer (an error status, for garbage), no thread may panic, and the coordinator must go
//! on serving.
//!
//! Bounded by `SHARDFUSION_FUZZ_SECONDS` (default 10 s per target; a session runs it for 10
//! minutes). The number of inputs tried is printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{
    CommandGetTables, CommandPreparedStatementQuery, CommandStatementQuery, ProstMessageExt,
    TicketStatementQuery,
};
use arrow_flight::{Action, FlightDescriptor, Ticket};
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use prost::Message;
use shardfusion_common::wire::TaskTicket;
use shardfusion_scheduler::frontend::session_messages::{
    OptionValue, SessionOptionValue, SetSessionOptionsRequest,
};
use shardfusion_tests::TestCluster;
use tonic::transport::Channel;

static PANICS: AtomicU64 = AtomicU64::new(0);

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

fn budget() -> Duration {
    let seconds = std::env::var("SHARDFUSION_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(10);
    Duration::from_secs(seconds)
}

/// Valid messages to mutate: garbage that is almost right reaches deeper than noise.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        CommandStatementQuery {
            query: "SELECT k, count(*) FROM t WHERE k < 10 GROUP BY k".into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec(),
        CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("%".into()),
            table_name_filter_pattern: Some("t%".into()),
            table_types: vec!["TABLE".into()],
            include_schema: true,
        }
        .as_any()
        .encode_to_vec(),
        CommandPreparedStatementQuery {
            prepared_statement_handle: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        }
        .as_any()
        .encode_to_vec(),
        TicketStatementQuery {
            statement_handle: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        }
        .as_any()
        .encode_to_vec(),
        arrow_flight::CancelFlightInfoRequest::new(
            arrow_flight::FlightInfo::new().with_endpoint(
                arrow_flight::FlightEndpoint::new().with_ticket(Ticket::new(
                    TicketStatementQuery {
                        statement_handle: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
                    }
                    .as_any()
                    .encode_to_vec(),
                )),
            ),
        )
        .encode_to_vec(),
        SetSessionOptionsRequest {
            session_options: [(
                "statement_timeout".to_string(),
                SessionOptionValue {
                    option_value: Some(OptionValue::StringValue("5s".into())),
                },
            )]
            .into(),
        }
        .encode_to_vec(),
    ]
}

/// Random bytes, or a seed with a few bytes overwritten, cut or extended.
fn hostile_bytes(seeds: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    let noise = prop::collection::vec(any::<u8>(), 0..512);
    let mutated = (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(mut seed, edits, cut, tail)| {
            if !seed.is_empty() {
                for (at, byte) in edits {
                    let i = at.index(seed.len());
                    seed[i] = byte;
                }
                seed.truncate(cut.index(seed.len() + 1));
            }
            seed.extend(tail);
            seed
        });
    prop_oneof![noise, mutated].boxed()
}

/// Runs `case` on generated inputs until the time budget is spent; returns how many ran.
async fn run_for<F, Fut>(strategy: BoxedStrategy<Vec<u8>>, mut case: F) -> u64
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut runner = TestRunner::default();
    let deadline = Instant::now() + budget();
    let mut count = 0;
    while Instant::now() < deadline {
        let input = strategy
            .new_tree(&mut runner)
            .expect("a generated input")
            .current();
        case(input).await;
        count += 1;
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_survives_hostile_tickets_commands_and_actions() {
    count_panics();
    let cluster = TestCluster::start(2).await;
    let mut c = cluster.client().await;
    c.run("CREATE TABLE t (k BIGINT NOT NULL, v TEXT)").await;
    c.run("SELECT create_distributed_table('t', 'k', shard_count => 4)")
        .await;
    c.run("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await;
    let channel = Channel::from_shared(cluster.url.replacen("grpc://", "http://", 1))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let client = FlightServiceClient::new(channel);
    let answered = Arc::new(AtomicU64::new(0));
    let count = run_for(hostile_bytes(seeds()), |bytes| {
        let mut client = client.clone();
        let answered = Arc::clone(&answered);
        async move {
            let bounded = Duration::from_secs(30);
            let calls = async {
                let _ = client.do_get(Ticket::new(bytes.clone())).await;
                let _ = client
                    .get_flight_info(FlightDescriptor::new_cmd(bytes.clone()))
                    .await;
                let _ = client
                    .do_action(Action::new("CreatePreparedStatement", bytes.clone()))
                    .await;
                let _ = client
                    .do_action(Action::new("shardfusion.register_worker", bytes.clone()))
                    .await;
                for action in ["CancelFlightInfo", "CancelQuery", "SetSessionOptions"] {
                    let _ = client.do_action(Action::new(action, bytes.clone())).await;
                }
            };
            tokio::time::timeout(bounded, calls)
                .await
                .expect("every hostile call is answered within 30 s");
            answered.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await;
    println!("coordinator: {count} hostile inputs, 7 calls each, all answered");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a thread panicked");
    assert_eq!(c.scalar("SELECT count(*) FROM t").await, "2");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_decoding_refuses_hostile_fragments() {
    count_panics();
    let ctx = SessionContext::new();
    let task_ctx = ctx.task_ctx();
    // A real fragment's bytes to mutate: a scan of shard files with a filter.
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client().await;
    c.run("CREATE TABLE f (k BIGINT NOT NULL, v TEXT)").await;
    c.run("SELECT create_distributed_table('f', 'k', shard_count => 2)")
        .await;
    c.run("INSERT INTO f VALUES (1, 'a')").await;
    let plan = cluster
        .coordinator()
        .session()
        .expect("session")
        .sql("SELECT k FROM f WHERE v = 'a'")
        .await
        .expect("plan")
        .create_physical_plan()
        .await
        .expect("physical plan");
    let mut fragments = Vec::new();
    datafusion::common::tree_node::TreeNode::apply(&plan, |node| {
        if node
            .downcast_ref::<shardfusion_common::shard_scan::ShardScanExec>()
            .is_some()
        {
            fragments
                .push(shardfusion_common::codec::encode_plan(Arc::clone(node)).expect("encode"));
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .expect("walk");
    assert!(!fragments.is_empty(), "the plan has a shard scan");
    let mut seeds = fragments.clone();
    seeds.extend(fragments.iter().map(|plan| {
        TaskTicket {
            query_id: "fuzz".into(),
            plan: plan.clone(),
            shuffle: None,
            memory_limit: 64 << 20,
        }
        .encode_to_vec()
    }));
    let count = run_for(hostile_bytes(seeds), |bytes| {
        let task_ctx = Arc::clone(&task_ctx);
        async move {
            let _ = shardfusion_executor::fragment::decode_fragment(&bytes, &task_ctx);
            if let Ok(ticket) = TaskTicket::decode(bytes.as_slice()) {
                let _ = shardfusion_executor::fragment::decode_fragment(&ticket.plan, &task_ctx);
            }
        }
    })
    .await;
    println!("worker: {count} hostile fragments and tickets decoded or refused");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "decoding panicked");
    cluster.shutdown().await;
}
