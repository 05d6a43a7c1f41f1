//! What a client is told when a statement fails on the cluster: the right gRPC code, the names
//! the client used, and nothing of how the servers' disks are laid out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightData, FlightDescriptor, Ticket};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use shardfusion_common::auth::{Audience, ClusterSecret, FlightMethod};
use shardfusion_common::codec::encode_plan;
use shardfusion_common::ids::{NodeId, ShardId};
use shardfusion_common::wire::{TaskTicket, WriteRequest};
use shardfusion_common::{FileRef, ShardFiles, ShardScanExec};
use shardfusion_tests::TestCluster;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The secret `TestCluster` starts its clusters with.
const TEST_SECRET: &str = "test-cluster-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_distribution_key_names_its_column() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        // The distribution column declared NOT NULL (as the README does) or not.
        for (table, column) in [
            ("accounts", "tenant BIGINT NOT NULL"),
            ("loose_accounts", "tenant BIGINT"),
        ] {
            c.run(&format!("CREATE TABLE {table} ({column}, name TEXT)"))
                .await;
            c.run(&format!(
                "SELECT create_distributed_table('{table}', 'tenant', shard_count => 4)"
            ))
            .await;
            for insert in [
                format!("INSERT INTO {table} VALUES (NULL, 'a')"),
                format!("INSERT INTO {table} VALUES (1, 'a'), (NULL, 'b')"),
                format!("INSERT INTO {table} (name, tenant) VALUES ('a', NULL)"),
            ] {
                let m = c.expect_error(&insert, Code::InvalidArgument).await;
                assert!(m.contains("\"tenant\""), "{insert}: {m}");
                // Not the names of the VALUES list's columns.
                assert!(
                    !m.contains("column1") && !m.contains("column2"),
                    "{insert}: {m}"
                );
            }
            assert_eq!(
                c.scalar(&format!("SELECT count(*) FROM {table}")).await,
                "0"
            );
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// The shard files of `dir`'s workers, as absolute paths.
fn shard_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("data dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with("worker-") {
            walk(&entry.path().join("shards"), &mut files);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_errors_show_no_absolute_paths() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = TestCluster::start(2).await;
        let mut c = cluster.client().await;
        c.run("CREATE TABLE events (id BIGINT NOT NULL, v BIGINT)")
            .await;
        c.run("SELECT create_distributed_table('events', 'id', shard_count => 4)")
            .await;
        c.run("INSERT INTO events SELECT value, value * 2 FROM generate_series(1, 1000)")
            .await;
        // A shard file vanishes behind the catalog's back (a disk problem, an operator's
        // mistake): the worker's read fails, naming the file.
        let files = shard_files(cluster.data_dir());
        assert!(
            !files.is_empty(),
            "no shard files under {:?}",
            cluster.data_dir()
        );
        let lost = &files[0];
        std::fs::remove_file(lost).expect("remove a shard file");
        let status = c
            .query("SELECT sum(v) FROM events")
            .await
            .expect_err("a missing shard file must fail the query");
        let message = status.message();
        let data_dir = cluster.data_dir().to_string_lossy().to_string();
        let canonical = cluster
            .data_dir()
            .canonicalize()
            .expect("canonical data dir")
            .to_string_lossy()
            .to_string();
        assert!(!message.contains(&data_dir), "{message}");
        assert!(!message.contains(&canonical), "{message}");
        // The file is still named, relative to its worker's data directory.
        let file_name = lost
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        assert!(message.contains("shards/t"), "{message}");
        assert!(message.contains(&file_name), "{message}");
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// A raw Flight client to the only worker of a one-worker cluster, signing its calls as the
/// coordinator does: what a client that knows the cluster secret could send.
struct RawWorker {
    client: FlightServiceClient<Channel>,
    secret: ClusterSecret,
    audience: Audience,
}

impl RawWorker {
    async fn connect(cluster: &TestCluster) -> Self {
        let mut c = cluster.client().await;
        let port = c.scalar("SELECT nodeport FROM pg_dist_node").await;
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("url")
            .connect()
            .await
            .expect("connect to the worker");
        let worker_id = std::fs::read_to_string(cluster.data_dir().join("worker-1/worker_id"))
            .expect("the worker's identity");
        Self {
            client: FlightServiceClient::new(channel),
            secret: ClusterSecret::new(TEST_SECRET),
            audience: Audience::worker(worker_id.trim()).expect("worker audience"),
        }
    }

    fn sign<T>(&self, mut request: Request<T>, method: FlightMethod, command: &[u8]) -> Request<T> {
        self.secret
            .sign(request.metadata_mut(), method, &self.audience, &[command]);
        request
    }

    /// Runs `DoGet` with `ticket` to its end; the status it failed with.
    async fn do_get_error(&mut self, ticket: Vec<u8>) -> Status {
        let request = self.sign(
            Request::new(Ticket::new(ticket.clone())),
            FlightMethod::DoGet,
            &ticket,
        );
        match self.client.do_get(request).await {
            Err(status) => status,
            Ok(response) => {
                let items: Vec<_> = response.into_inner().collect().await;
                items
                    .into_iter()
                    .find_map(Result::err)
                    .expect("the fragment must fail")
            }
        }
    }

    /// Sends `messages` as one `DoPut` (the first carries the descriptor); the status it
    /// failed with.
    async fn do_put_error(&mut self, messages: Vec<FlightData>) -> Status {
        let command = messages[0]
            .flight_descriptor
            .as_ref()
            .expect("descriptor")
            .cmd
            .clone();
        let request = self.sign(
            Request::new(futures::stream::iter(messages)),
            FlightMethod::DoPut,
            &command,
        );
        match self.client.do_put(request).await {
            Err(status) => status,
            Ok(response) => response
                .into_inner()
                .try_collect::<Vec<_>>()
                .await
                .expect_err("the write must fail"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_refused_on_a_worker_are_permission_denied() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = TestCluster::start(1).await;
        let mut worker = RawWorker::connect(&cluster).await;
        let schema = Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, true)]));
        // Outside the data directory, and inside it but not a shard file (the worker's
        // identity, anything not written as a shard file): a fragment names shard files only.
        for path in [
            "../../../../etc/passwd",
            "/etc/passwd",
            "shards/t1/s1/../../../../../etc/passwd",
            "worker_id",
            "shards/t1/s1/notes.txt",
        ] {
            let scan = ShardScanExec::try_new(
                "stolen",
                Arc::clone(&schema),
                None,
                None,
                None,
                vec![ShardFiles {
                    shard_id: ShardId(1),
                    node_id: NodeId(1),
                    files: vec![FileRef {
                        path: path.to_string(),
                        byte_size: 100,
                        row_count: 1,
                        stats: None,
                    }],
                }],
            )
            .expect("scan");
            let ticket = TaskTicket {
                query_id: "error-codes-test".into(),
                plan: encode_plan(Arc::new(scan)).expect("encode"),
                shuffle: None,
                memory_limit: 0,
            };
            let status = worker.do_get_error(ticket.encode_to_vec()).await;
            assert_eq!(status.code(), Code::PermissionDenied, "{path}: {status:?}");
            assert!(
                status.message().contains("refusing path"),
                "{path}: {status:?}"
            );
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_put_streams_are_invalid_argument() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = TestCluster::start(1).await;
        let mut worker = RawWorker::connect(&cluster).await;
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..10_000))],
        )
        .expect("batch");
        let write = WriteRequest {
            table_id: 1,
            shard_id: 102_008,
            write_id: "6a1f1c9e-2f4c-4d7e-9b8a-3c2d1e0f9a8b".into(),
            sort_column: "x".into(),
            bloom_filter_columns: Vec::new(),
        };
        let mut messages: Vec<FlightData> = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(Some(FlightDescriptor::new_cmd(write.encode_to_vec())))
            .build(futures::stream::iter([Ok(batch)]))
            .try_collect()
            .await
            .expect("encode");
        assert_eq!(messages.len(), 2, "a schema and one batch");
        // The batch's body is cut off halfway, as by a sender that stopped mid-message.
        let body = messages[1].data_body.clone();
        messages[1].data_body = body.slice(..body.len() / 2);
        let status = worker.do_put_error(messages).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
