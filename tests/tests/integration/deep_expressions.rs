//! Deep and huge statements get an answer or a clear error, and the server keeps serving.
//!
//! Regression tests for issue 10:
//! - #3: `WHERE x = 1 OR x = 2 OR ...` with 2,000+ terms, or a 10,000-term arithmetic chain,
//!   overflowed a thread's stack and aborted the coordinator (and, in `local`, every worker).
//! - #7: a `WHERE` with 45 or more alternating `+`/`-` failed on distributed tables only: the
//!   workers could not decode the fragment (prost's recursion limit).
//!
//! The in-process cluster plans on the test runtime's ordinary 2 MiB thread stacks, which is
//! what the depth limits must hold for; the process test checks that the real binary survives.

use std::time::Duration;

use shardfusion_benchmarks::processes::{ProcessCluster, shardfusion_binary};
use shardfusion_tests::{TestClient, TestCluster};
use tonic::Code;

const ROWS: i64 = 20_000;

async fn with_table(client: &mut TestClient) {
    client
        .run("CREATE TABLE events (x BIGINT NOT NULL, y BIGINT, note TEXT)")
        .await;
    client
        .run("SELECT create_distributed_table('events', 'x', shard_count => 8)")
        .await;
    client
        .run(&format!(
            "INSERT INTO events SELECT value, value % 7, 'n' || value FROM generate_series(0, {}) AS t(value)",
            ROWS - 1
        ))
        .await;
}

fn or_chain(terms: usize) -> String {
    (0..terms)
        .map(|i| format!("x = {}", i * 2))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// `x + 1 - 1 + 1 - ...` with `operators` alternating operators: still `x`.
fn alternating(operators: usize) -> String {
    let mut expr = String::from("x");
    for i in 0..operators {
        expr.push_str(if i % 2 == 0 { " + 1" } else { " - 1" });
    }
    if operators % 2 == 1 {
        expr.push_str(" - 1");
    }
    expr
}

/// Statements that once crashed or failed, with what the user must see.
async fn check_deep_statements(client: &mut TestClient) {
    // 10,000 ORed equalities on a distributed table: an answer.
    let sql = format!("SELECT count(*) FROM events WHERE {}", or_chain(10_000));
    assert_eq!(client.scalar(&sql).await, "10000");
    // The same as AND of negations, with the chain in the SELECT list as well.
    let sql = format!(
        "SELECT count(*), sum(CASE WHEN {} THEN 1 ELSE 0 END) FROM events WHERE NOT ({})",
        or_chain(3_000),
        or_chain(3_000)
    );
    let batches = client.run(&sql).await;
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .expect("printable")
        .to_string();
    assert!(text.contains("| 17000 "), "{text}");

    // 1,000 alternating +/- on a distributed table: workers decode and run it (#7).
    let sql = format!(
        "SELECT count(*), sum({}) FROM events WHERE {} >= 100",
        alternating(1_000),
        alternating(1_001)
    );
    let batches = client.run(&sql).await;
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .expect("printable")
        .to_string();
    let expected_sum: i64 = (100..ROWS).sum();
    assert!(
        text.contains(&format!("| {} ", ROWS - 100)) && text.contains(&expected_sum.to_string()),
        "{text}"
    );
    let sql = format!(
        "SELECT {} AS k, count(*) FROM events GROUP BY 1 ORDER BY 1 LIMIT 2",
        alternating(1_000).replace('x', "y")
    );
    assert_eq!(
        client
            .run(&sql)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        2
    );

    // 50,000-term arithmetic: a clear error (54001, statement too complex).
    let sql = format!("SELECT {}1", "1 + ".repeat(50_000));
    let message = client.expect_error(&sql, Code::InvalidArgument).await;
    assert!(message.contains("too complex"), "{message}");
    let sql = format!(
        "SELECT count(*) FROM events WHERE {} > 0",
        alternating(50_000)
    );
    client.expect_error(&sql, Code::InvalidArgument).await;

    // 10 MB of SQL: a chain refused before parsing, and a long literal answered.
    let huge_chain = format!("SELECT {}1", "1 + ".repeat(10 * 1024 * 1024 / 4));
    let message = client
        .expect_error(&huge_chain, Code::InvalidArgument)
        .await;
    assert!(message.contains("too complex"), "{message}");
    // (Sent as an update: a query's FlightInfo echoes its text in the ticket, which exceeds
    // the test client's 4 MiB response limit.)
    let literal = "a".repeat(10 * 1024 * 1024);
    client.run("CREATE TABLE notes (note TEXT)").await;
    let inserted = client
        .update(&format!("INSERT INTO notes VALUES ('{literal}')"))
        .await
        .expect("a 10 MB INSERT is answered");
    assert_eq!(inserted, 1);
    assert_eq!(
        client.scalar("SELECT length(note) FROM notes").await,
        (10 * 1024 * 1024).to_string()
    );
    let sql = format!("SELECT count(*) FROM events WHERE {}", or_chain(700_000));
    let message = client.expect_error(&sql, Code::InvalidArgument).await;
    assert!(message.contains("too complex"), "{message}");

    // The server kept serving throughout.
    assert_eq!(
        client.scalar("SELECT count(*) FROM events").await,
        ROWS.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_statements_in_process() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;
        with_table(&mut client).await;
        check_deep_statements(&mut client).await;
        cluster.shutdown().await;
    })
    .await
    .expect("deep statements finish within 300 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_statements_against_processes() {
    let binary = shardfusion_binary().expect("the shardfusion binary is built next to the tests");
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = ProcessCluster::start(&binary, 2)
            .await
            .expect("processes start");
        let mut client = TestClient::connect(&cluster.url).await;
        with_table(&mut client).await;
        check_deep_statements(&mut client).await;
    })
    .await
    .expect("deep statements finish within 300 s");
}
