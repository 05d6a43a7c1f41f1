//! Starting separate processes without a configured cluster secret: the coordinator generates
//! one, stores it (0600) and prints the command that starts workers with it; a worker started
//! that way registers; a worker without a secret refuses to start with a message saying what
//! to set; a restarted coordinator keeps its secret, so its workers keep working.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shardfusion_benchmarks::processes::shardfusion_binary;
use shardfusion_tests::TestClient;

/// Children killed when the test ends, however it ends.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn command(binary: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_remove("SHARDFUSION_CLUSTER_SECRET")
        .stdin(Stdio::null());
    command
}

/// Starts a coordinator without a secret; returns it and a channel of its stdout lines.
fn start_coordinator(binary: &Path, port: u16, dir: &Path) -> (Child, mpsc::Receiver<String>) {
    let listen = format!("127.0.0.1:{port}");
    let data_dir = dir.display().to_string();
    let mut child = command(
        binary,
        &["coordinator", "--listen", &listen, "--data-dir", &data_dir],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("start the coordinator");
    let stdout = child.stdout.take().expect("coordinator stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, received)
}

/// Waits until `client`'s `pg_dist_node` lists `count` nodes.
async fn wait_for_nodes(url: &str, count: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut client) = TestClient::try_connect(url).await
            && let Ok(batches) = client.query("SELECT count(*) FROM pg_dist_node").await
            && batches
                .iter()
                .find(|b| b.num_rows() > 0)
                .and_then(|b| arrow::util::display::array_value_to_string(b.column(0), 0).ok())
                .as_deref()
                == Some(count)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not list {count} nodes within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_without_a_secret_generates_one_and_tells_how_to_start_workers() {
    let binary = shardfusion_binary().expect(
        "the shardfusion binary is built next to the tests (cargo build --workspace \
         --all-targets) or named by SHARDFUSION_BIN",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut children = Children::default();
    tokio::time::timeout(Duration::from_secs(180), async {
        let port = free_port();
        let coordinator_dir = dir.path().join("coordinator");
        let (coordinator, lines) = start_coordinator(&binary, port, &coordinator_dir);
        children.0.push(coordinator);

        // The printed worker command carries the generated secret.
        let mut printed = Vec::new();
        let instruction = loop {
            let line = tokio::task::block_in_place(|| lines.recv_timeout(Duration::from_secs(30)))
                .unwrap_or_else(|_| {
                    panic!("the coordinator printed no worker command; it printed {printed:?}")
                });
            if line.contains("SHARDFUSION_CLUSTER_SECRET=") {
                break line;
            }
            printed.push(line);
        };
        assert!(
            instruction.contains(&format!(
                "shardfusion worker --coordinator http://127.0.0.1:{port}"
            )),
            "{instruction}"
        );
        let secret = instruction
            .split_whitespace()
            .find_map(|word| word.strip_prefix("SHARDFUSION_CLUSTER_SECRET="))
            .expect("the secret")
            .to_string();
        assert!(secret.len() >= 32, "a generated secret is long: {secret}");
        let stored = coordinator_dir.join("cluster_secret");
        assert_eq!(
            std::fs::read_to_string(&stored)
                .expect("stored secret")
                .trim(),
            secret
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&stored)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the secret file is private");
        }

        // A worker without the secret refuses to start, saying what to set.
        let coordinator_url = format!("http://127.0.0.1:{port}");
        let worker_listen = format!("127.0.0.1:{}", free_port());
        let worker_dir = dir.path().join("worker-1").display().to_string();
        let worker_args = [
            "worker",
            "--listen",
            &worker_listen,
            "--data-dir",
            &worker_dir,
            "--coordinator",
            &coordinator_url,
        ];
        let mut refused = command(&binary, &worker_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a worker");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = refused.try_wait().expect("worker status") {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = refused.kill();
                let _ = refused.wait();
                panic!("a worker without a secret kept running");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = refused.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        assert!(!status.success(), "a worker without a secret must fail");
        assert!(
            stderr.contains("SHARDFUSION_CLUSTER_SECRET"),
            "the worker says what to set: {stderr}"
        );

        // With the printed secret, it registers and serves.
        let worker = command(&binary, &worker_args)
            .env("SHARDFUSION_CLUSTER_SECRET", &secret)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a worker");
        children.0.push(worker);
        let url = format!("grpc://127.0.0.1:{port}");
        wait_for_nodes(&url, "1").await;
        let mut client = TestClient::connect(&url).await;
        client.run("CREATE TABLE bootstrap (k INT NOT NULL)").await;
        client
            .run("SELECT create_distributed_table('bootstrap', 'k', shard_count => 4)")
            .await;
        client
            .run("INSERT INTO bootstrap SELECT CAST(value AS INT) FROM generate_series(1, 50)")
            .await;
        drop(client);

        // A restarted coordinator keeps the stored secret: the worker still serves it.
        let mut first = children.0.remove(0);
        let _ = first.kill();
        let _ = first.wait();
        let (coordinator, _lines) = start_coordinator(&binary, port, &coordinator_dir);
        children.0.push(coordinator);
        wait_for_nodes(&url, "1").await;
        let mut client = TestClient::connect(&url).await;
        assert_eq!(client.scalar("SELECT count(*) FROM bootstrap").await, "50");
        assert_eq!(
            std::fs::read_to_string(&stored)
                .expect("stored secret")
                .trim(),
            secret
        );
    })
    .await
    .expect("the test finishes within 180 s");
}
