//! Worker-to-worker shuffles against separate `shardfusion` processes, as a user sees them fail:
//! - a worker killed (SIGKILL) while a shuffle join runs fails the statement within the worker
//!   timeout, as `Unavailable` naming the dead worker; the coordinator keeps serving, a query
//!   that does not touch that worker works, the surviving worker goes idle, and after the
//!   worker restarts a shuffle join of the same tables answers correctly;
//! - a client that drops a long shuffle query leaves nothing running: both workers go idle,
//!   the statement leaves `shardfusion_stat_activity`, and the next query is not slowed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use shardfusion_benchmarks::processes::{ProcessCluster, shardfusion_binary};
use shardfusion_tests::TestClient;
use shardfusion_tests::compare::rows;
use tonic::Code;

/// The worker timeout the processes run with here (the default is 30 s).
const TIMEOUT_SECS: u64 = 3;

/// Rows of each table.
const ROWS: i64 = 200_000;

/// Matches every row with the 1/20 of the other table's rows that share its `k`: 2·10⁹ joined
/// rows, each computed (a `count(*)` alone is answered in seconds), far longer than any bound
/// below. `k` is no distribution column on either side, and both sides are too large to
/// broadcast, so both are shuffled between the workers.
const LONG_SHUFFLE: &str = "SELECT max(a.u + b.u) FROM a JOIN b ON a.k = b.k";

/// A shuffle join of the same tables on `u` (unique, not a distribution column): quick, with
/// a known answer.
const SHORT_SHUFFLE: &str = "SELECT count(*), sum(a.id) FROM a JOIN b ON a.u = b.u";

fn short_answer() -> String {
    format!("{ROWS} | {}", ROWS * (ROWS + 1) / 2)
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// CPU time (user + system) process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state (field 3):
    // utime and stime are fields 14 and 15, in clock ticks.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let ticks: u64 = fields.iter().sum();
    Duration::from_millis(ticks * 1000 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// CPU time `pids` use together during the next `window`.
async fn cpu_during(pids: &[u32], window: Duration) -> Duration {
    let before: Duration = pids.iter().map(|p| cpu_time(*p)).sum();
    tokio::time::sleep(window).await;
    let after: Duration = pids.iter().map(|p| cpu_time(*p)).sum();
    after.saturating_sub(before)
}

/// Waits until `pids` together use less than a tenth of a core over a 2-second window;
/// panics with what they used if that takes longer than `within`.
async fn wait_idle(pids: &[u32], within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    let window = Duration::from_secs(2);
    loop {
        let used = cpu_during(pids, window).await;
        if used < window / 10 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still using {used:?} of CPU per {window:?} after {within:?}"
        );
    }
}

/// A distribution value of `a` whose shard lives on the worker listening on `port`.
async fn key_on(client: &mut TestClient, port: u16) -> i64 {
    for key in 1..500 {
        let shard = client
            .scalar(&format!(
                "SELECT get_shard_id_for_distribution_column('a', {key})"
            ))
            .await;
        let node_port = client
            .scalar(&format!(
                "SELECT nodeport FROM citus_shards WHERE shardid = {shard}"
            ))
            .await;
        if node_port == port.to_string() {
            return key;
        }
    }
    panic!("no key of a lives on the worker at port {port}");
}

/// A cluster of 2 worker processes holding `a` and `b` (8 shards each, distributed by `id`).
async fn start() -> ProcessCluster {
    let binary = shardfusion_binary().expect("the shardfusion binary is built next to the tests");
    let timeout = TIMEOUT_SECS.to_string();
    let cluster = ProcessCluster::start_with_env(
        &binary,
        2,
        &[("SHARDFUSION_WORKER_TIMEOUT_SECS", timeout.as_str())],
    )
    .await
    .expect("processes start");
    let mut client = TestClient::connect(&cluster.url).await;
    for table in ["a", "b"] {
        client
            .run(&format!(
                "CREATE TABLE {table} (id BIGINT NOT NULL, k INT, u BIGINT)"
            ))
            .await;
        client
            .run(&format!(
                "SELECT create_distributed_table('{table}', 'id', shard_count => 8)"
            ))
            .await;
        client
            .run(&format!(
                "INSERT INTO {table} SELECT value AS id, value % 20 AS k, value AS u \
                 FROM generate_series(1, {ROWS}) AS s(value)"
            ))
            .await;
    }
    for sql in [LONG_SHUFFLE, SHORT_SHUFFLE] {
        let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
        assert!(
            plan.contains("ShuffleReadExec: input=0, hash="),
            "{sql} is not a shuffle join:\n{plan}"
        );
    }
    assert_eq!(
        rows(&client.run(SHORT_SHUFFLE).await),
        [short_answer()],
        "{SHORT_SHUFFLE} before any failure"
    );
    cluster
}

fn worker_pids(cluster: &ProcessCluster) -> Vec<u32> {
    (0..2)
        .map(|i| cluster.worker_pid(i).expect("worker runs"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_fails_the_shuffle_and_the_cluster_recovers() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let mut cluster = start().await;
        let mut client = TestClient::connect(&cluster.url).await;
        let dead_port = cluster.worker_port(1).expect("worker 2's port");
        let live_port = cluster.worker_port(0).expect("worker 1's port");
        let live_pid = cluster.worker_pid(0).expect("worker 1 runs");
        let live_key = key_on(&mut client, live_port).await;

        let url = cluster.url.clone();
        let running = tokio::spawn(async move {
            let mut client = TestClient::connect(&url).await;
            client.query(LONG_SHUFFLE).await
        });
        // Let the shuffle get going on both workers.
        let busy = cpu_during(&worker_pids(&cluster), Duration::from_secs(2)).await;
        assert!(
            busy > Duration::from_millis(500),
            "the workers used only {busy:?} of CPU in 2 s: is {LONG_SHUFFLE} running?"
        );
        assert!(!running.is_finished(), "{LONG_SHUFFLE} ended too soon");

        signal(cluster.worker_pid(1).expect("worker 2 runs"), "KILL");
        let killed = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(TIMEOUT_SECS * 10), running)
            .await
            .expect("the statement ends after its worker was killed")
            .expect("the query task does not panic");
        let elapsed = killed.elapsed();
        let status = answer.expect_err("a shuffle whose worker was killed fails");
        assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
        assert!(
            status.message().contains(&dead_port.to_string()),
            "the error names the dead worker (port {dead_port}): {}",
            status.message()
        );
        assert!(
            elapsed < Duration::from_secs(TIMEOUT_SECS * 4),
            "failed only {elapsed:?} after the kill"
        );

        // The coordinator keeps serving, and a query on the live worker works.
        assert_eq!(
            client.scalar("SELECT count(*) FROM pg_dist_node").await,
            "2"
        );
        let started = Instant::now();
        assert_eq!(
            client
                .scalar(&format!("SELECT u FROM a WHERE id = {live_key}"))
                .await,
            live_key.to_string()
        );
        assert!(
            started.elapsed() < Duration::from_secs(TIMEOUT_SECS),
            "a query on the live worker took {:?}",
            started.elapsed()
        );
        // Nothing of the failed statement keeps the live worker busy.
        wait_idle(
            &[live_pid],
            Duration::from_secs(20),
            "the live worker after the failed shuffle",
        )
        .await;

        // The worker comes back on its port: the shuffle join answers correctly.
        cluster.restart_worker(1).expect("worker 2 restarts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", dead_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the restarted worker never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match client.query(SHORT_SHUFFLE).await {
            Ok(batches) => assert_eq!(rows(&batches), [short_answer()]),
            Err(status) => panic!(
                "the first shuffle after the restart failed: {:?} {}",
                status.code(),
                status.message()
            ),
        }
        assert_eq!(rows(&client.run(SHORT_SHUFFLE).await), [short_answer()]);
    })
    .await
    .expect("the test finishes within 300 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_shuffle_query_leaves_nothing_running() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = start().await;
        let mut client = TestClient::connect(&cluster.url).await;
        let started = Instant::now();
        assert_eq!(rows(&client.run(SHORT_SHUFFLE).await), [short_answer()]);
        let quick = started.elapsed();
        let mut pids = worker_pids(&cluster);

        let mut dropped = TestClient::connect(&cluster.url).await;
        let mut stream = dropped
            .stream(LONG_SHUFFLE)
            .await
            .expect("the long shuffle starts");
        assert!(
            tokio::time::timeout(Duration::from_secs(2), stream.next())
                .await
                .is_err(),
            "{LONG_SHUFFLE} answered within 2 s; it is meant to run far longer"
        );
        let busy = cpu_during(&pids, Duration::from_secs(2)).await;
        assert!(
            busy > Duration::from_millis(500),
            "the workers used only {busy:?} of CPU in 2 s: is {LONG_SHUFFLE} running?"
        );
        // The client goes away mid-statement.
        drop(stream);
        drop(dropped);

        pids.push(cluster.coordinator_pid());
        wait_idle(
            &pids,
            Duration::from_secs(20),
            "the workers and coordinator after the client dropped the shuffle",
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let active = client
                .scalar(
                    "SELECT count(*) FROM shardfusion_stat_activity \
                     WHERE starts_with(query, 'SELECT max(a.u + b.u) FROM a JOIN b')",
                )
                .await;
            if active == "0" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the dropped statement is still listed as active"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let started = Instant::now();
        assert_eq!(rows(&client.run(SHORT_SHUFFLE).await), [short_answer()]);
        let after = started.elapsed();
        assert!(
            after < quick * 3 + Duration::from_secs(2),
            "the shuffle after the dropped one took {after:?} (before: {quick:?})"
        );
    })
    .await
    .expect("the test finishes within 300 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_fails_the_shuffle_and_leaves_nothing_running() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = start().await;
        let mut client = TestClient::connect(&cluster.url).await;
        let stopped_port = cluster.worker_port(1).expect("worker 2's port");
        let stopped_pid = cluster.worker_pid(1).expect("worker 2 runs");
        let live_pid = cluster.worker_pid(0).expect("worker 1 runs");

        let url = cluster.url.clone();
        let running = tokio::spawn(async move {
            let mut client = TestClient::connect(&url).await;
            client.query(LONG_SHUFFLE).await
        });
        let busy = cpu_during(&worker_pids(&cluster), Duration::from_secs(2)).await;
        assert!(
            busy > Duration::from_millis(500),
            "the workers used only {busy:?} of CPU in 2 s: is {LONG_SHUFFLE} running?"
        );

        // The worker hangs (no answers, no connection errors), its peer mid-shuffle with it.
        signal(stopped_pid, "STOP");
        let stopped = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(TIMEOUT_SECS * 10), running)
            .await
            .expect("the statement ends after its worker stopped answering")
            .expect("the query task does not panic");
        let elapsed = stopped.elapsed();
        let status = answer.expect_err("a shuffle whose worker hangs fails");
        assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
        assert!(
            status.message().contains(&stopped_port.to_string()),
            "the error names the stopped worker (port {stopped_port}): {}",
            status.message()
        );
        assert!(
            elapsed < Duration::from_secs(TIMEOUT_SECS * 4),
            "failed only {elapsed:?} after the worker stopped"
        );
        wait_idle(
            &[live_pid],
            Duration::from_secs(20),
            "the live worker after the failed shuffle",
        )
        .await;

        // Once it answers again, what it ran for the failed statement stops too, and the
        // cluster answers shuffles again.
        signal(stopped_pid, "CONT");
        wait_idle(
            &worker_pids(&cluster),
            Duration::from_secs(20),
            "both workers after the stopped one resumed",
        )
        .await;
        assert_eq!(rows(&client.run(SHORT_SHUFFLE).await), [short_answer()]);
    })
    .await
    .expect("the test finishes within 300 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shuffle_with_a_worker_already_dead_fails_naming_it() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = start().await;
        let mut client = TestClient::connect(&cluster.url).await;
        let dead_port = cluster.worker_port(1).expect("worker 2's port");
        let live_port = cluster.worker_port(0).expect("worker 1's port");
        let live_key = key_on(&mut client, live_port).await;

        signal(cluster.worker_pid(1).expect("worker 2 runs"), "KILL");
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..2 {
            let started = Instant::now();
            let status = client
                .query(SHORT_SHUFFLE)
                .await
                .expect_err("a shuffle needing a dead worker fails");
            let elapsed = started.elapsed();
            assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
            assert!(
                status.message().contains(&dead_port.to_string()),
                "the error names the dead worker (port {dead_port}): {}",
                status.message()
            );
            assert!(
                elapsed < Duration::from_secs(TIMEOUT_SECS * 4),
                "failed only after {elapsed:?}"
            );
            assert_eq!(
                client
                    .scalar(&format!("SELECT u FROM a WHERE id = {live_key}"))
                    .await,
                live_key.to_string()
            );
        }
    })
    .await
    .expect("the test finishes within 300 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_coordinator_leaves_no_shuffle_running_on_the_workers() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = start().await;
        let url = cluster.url.clone();
        let running = tokio::spawn(async move {
            let mut client = TestClient::connect(&url).await;
            client.query(LONG_SHUFFLE).await
        });
        let busy = cpu_during(&worker_pids(&cluster), Duration::from_secs(2)).await;
        assert!(
            busy > Duration::from_millis(500),
            "the workers used only {busy:?} of CPU in 2 s: is {LONG_SHUFFLE} running?"
        );
        signal(cluster.coordinator_pid(), "KILL");
        let answer = tokio::time::timeout(Duration::from_secs(TIMEOUT_SECS * 10), running)
            .await
            .expect("the client hears of the dead coordinator")
            .expect("the query task does not panic");
        assert!(answer.is_err(), "a statement whose coordinator died fails");
        wait_idle(
            &worker_pids(&cluster),
            Duration::from_secs(20),
            "the workers after their coordinator died mid-shuffle",
        )
        .await;
    })
    .await
    .expect("the test finishes within 300 s");
}

/// An error raised inside a producer stage (division by zero in a shuffled side, an aligned
/// side, a repartitioned aggregate's input) fails the statement promptly, with the same kind
/// the same error has without a shuffle; the next shuffle answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_error_fails_the_statement_with_its_kind() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = start().await;
        let mut client = TestClient::connect(&cluster.url).await;
        let plain = client
            .query("SELECT sum(k / (k - k)) FROM a")
            .await
            .expect_err("division by zero fails");
        for sql in [
            // Hash shuffle of both sides (the key is computed in the producer).
            "SELECT count(*) FROM a JOIN b ON a.u + a.k / (a.k - a.k) = b.u",
            // Moved into b's shards by a.u.
            "SELECT count(*) FROM a JOIN b ON a.u + a.k / (a.k - a.k) = b.id",
            // A repartitioned aggregate.
            "SELECT u, sum(k / (k - k)) FROM a GROUP BY u",
        ] {
            let plan = rows(&client.run(&format!("EXPLAIN {sql}")).await).join("\n");
            assert!(
                plan.contains("ShuffleReadExec"),
                "{sql}: no shuffle\n{plan}"
            );
            let started = Instant::now();
            let status = tokio::time::timeout(Duration::from_secs(60), client.query(sql))
                .await
                .unwrap_or_else(|_| panic!("{sql} neither failed nor answered within 60 s"))
                .expect_err("division by zero fails");
            assert_eq!(
                status.code(),
                plain.code(),
                "{sql}: {} (without a shuffle: {})",
                status.message(),
                plain.message()
            );
            assert!(
                status.message().to_lowercase().contains("divide by zero")
                    || status.message().to_lowercase().contains("division by zero"),
                "{sql}: {}",
                status.message()
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{sql} failed only after {:?}",
                started.elapsed()
            );
        }
        assert_eq!(rows(&client.run(SHORT_SHUFFLE).await), [short_answer()]);
        wait_idle(
            &worker_pids(&cluster),
            Duration::from_secs(20),
            "the workers after failed shuffles",
        )
        .await;
    })
    .await
    .expect("the test finishes within 300 s");
}

/// Resident memory of process `pid`.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// A client that stops reading a shuffle join's (endless) rows holds the whole pipeline back:
/// the coordinator, the consumer tasks and the producer tasks stop computing once the bounded
/// buffers between them are full, and their memory stops growing. Dropping it ends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_holds_the_shuffle_back() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = start().await;
        let mut pids = worker_pids(&cluster);
        pids.push(cluster.coordinator_pid());
        let mut stalled = TestClient::connect(&cluster.url).await;
        // 2·10⁹ rows of about 60 bytes: far more than any buffer.
        let mut stream = stalled
            .stream("SELECT a.id, b.id, a.u + b.u, repeat('x', 40) FROM a JOIN b ON a.k = b.k")
            .await
            .expect("the shuffle starts");
        let first = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("a first batch within 30 s");
        assert!(first.is_some_and(|b| b.is_ok()), "the first batch arrives");
        // The client reads nothing more. Give the buffers time to fill, then the pipeline
        // must be idle and its memory flat.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before: Vec<u64> = pids.iter().map(|p| rss(*p)).collect();
        let used = cpu_during(&pids, Duration::from_secs(5)).await;
        let after: Vec<u64> = pids.iter().map(|p| rss(*p)).collect();
        assert!(
            used < Duration::from_millis(1_000),
            "the processes used {used:?} of CPU in 5 s while the client read nothing"
        );
        for ((pid, b), a) in pids.iter().zip(&before).zip(&after) {
            assert!(
                a.saturating_sub(*b) < 64 << 20,
                "process {pid} grew from {} MiB to {} MiB while the client read nothing",
                b >> 20,
                a >> 20
            );
        }
        drop(stream);
        drop(stalled);
        wait_idle(
            &pids,
            Duration::from_secs(20),
            "the processes after the stalled client went away",
        )
        .await;
    })
    .await
    .expect("the test finishes within 300 s");
}
