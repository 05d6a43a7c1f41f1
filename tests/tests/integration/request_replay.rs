//! A request captured on the wire between the coordinator and a worker cannot be reused: sent
//! again with a forged ticket, sent again unchanged, or sent to another worker, it is refused
//! (`Unauthenticated` / `PermissionDenied`) before any fragment runs.
//!
//! The capture point is a real worker whose incoming requests are recorded, as an eavesdropper
//! on its network link would see them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use futures::StreamExt;
use prost::Message;
use shardfusion_common::auth::ClusterSecret;
use shardfusion_common::storage::DataRoot;
use shardfusion_common::wire::TaskTicket;
use shardfusion_executor::service::WorkerService;
use shardfusion_tests::TestCluster;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status, Streaming};

/// A `DoGet` the recording worker received: its metadata and ticket.
#[derive(Clone)]
struct CapturedGet {
    metadata: MetadataMap,
    ticket: prost::bytes::Bytes,
}

/// A real worker that records every `DoGet` before serving it.
#[derive(Clone)]
struct RecordingWorker {
    inner: WorkerService,
    gets: Arc<Mutex<Vec<CapturedGet>>>,
}

#[tonic::async_trait]
impl FlightService for RecordingWorker {
    type HandshakeStream = <WorkerService as FlightService>::HandshakeStream;
    type ListFlightsStream = <WorkerService as FlightService>::ListFlightsStream;
    type DoGetStream = <WorkerService as FlightService>::DoGetStream;
    type DoPutStream = <WorkerService as FlightService>::DoPutStream;
    type DoActionStream = <WorkerService as FlightService>::DoActionStream;
    type ListActionsStream = <WorkerService as FlightService>::ListActionsStream;
    type DoExchangeStream = <WorkerService as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.inner.handshake(request).await
    }
    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.inner.list_flights(request).await
    }
    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.inner.get_flight_info(request).await
    }
    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        self.inner.poll_flight_info(request).await
    }
    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.inner.get_schema(request).await
    }
    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        self.gets.lock().expect("lock").push(CapturedGet {
            metadata: request.metadata().clone(),
            ticket: request.get_ref().ticket.clone(),
        });
        self.inner.do_get(request).await
    }
    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        self.inner.do_put(request).await
    }
    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        self.inner.do_action(request).await
    }
    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.inner.list_actions(request).await
    }
    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.inner.do_exchange(request).await
    }
}

/// Sends `ticket` to the worker at `port` with the captured `metadata`; returns the status
/// it was refused with, or panics if the fragment ran.
async fn replay(port: u16, metadata: &MetadataMap, ticket: Vec<u8>, what: &str) -> Status {
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("worker URL")
        .connect()
        .await
        .expect("connect to the worker");
    let mut client = FlightServiceClient::new(channel);
    let mut request = Request::new(Ticket::new(ticket));
    *request.metadata_mut() = metadata.clone();
    match client.do_get(request).await {
        Err(status) => status,
        Ok(response) => {
            let mut stream = response.into_inner();
            let mut frames = 0;
            while let Some(frame) = stream.next().await {
                if let Err(status) = frame {
                    return status;
                }
                frames += 1;
            }
            panic!("{what}: the worker ran the replayed fragment ({frames} frames)")
        }
    }
}

fn assert_refused(status: &Status, what: &str) {
    assert!(
        matches!(
            status.code(),
            Code::Unauthenticated | Code::PermissionDenied
        ),
        "{what}: expected Unauthenticated or PermissionDenied, got {:?}: {}",
        status.code(),
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_requests_cannot_be_replayed_or_forged() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(2).await;
        let mut client = cluster.client().await;

        // A real worker with the cluster's secret, whose requests are recorded.
        let dir = tempfile::tempdir().expect("temp dir");
        let root = DataRoot::open(dir.path()).expect("data root");
        let worker = RecordingWorker {
            inner: WorkerService::try_new(root, ClusterSecret::new("test-cluster-secret"))
                .expect("worker service"),
            gets: Arc::default(),
        };
        let gets = Arc::clone(&worker.gets);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(FlightServiceServer::new(worker))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        client
            .run(&format!("SELECT citus_add_node('127.0.0.1', {port})"))
            .await;
        client.run("CREATE TABLE replay (k INT NOT NULL)").await;
        client
            .run("SELECT create_distributed_table('replay', 'k', shard_count => 6)")
            .await;
        client
            .run("INSERT INTO replay SELECT CAST(value AS INT) FROM generate_series(1, 300)")
            .await;
        assert_eq!(client.scalar("SELECT sum(k) FROM replay").await, "45150");

        let captured = gets
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("the recording worker ran a fragment");

        // The same header with a forged ticket (another query id around the same plan).
        let mut forged = TaskTicket::decode(captured.ticket.clone()).expect("a task ticket");
        forged.query_id = "forged-by-an-eavesdropper".to_string();
        let status = replay(
            port,
            &captured.metadata,
            forged.encode_to_vec(),
            "forged ticket",
        )
        .await;
        assert_refused(&status, "forged ticket");

        // The same request again.
        let status = replay(
            port,
            &captured.metadata,
            captured.ticket.to_vec(),
            "unchanged replay",
        )
        .await;
        assert_refused(&status, "unchanged replay");

        // The same request to another worker of the cluster.
        let other_port: u16 = client
            .scalar(&format!(
                "SELECT min(nodeport) FROM pg_dist_node WHERE nodeport <> {port}"
            ))
            .await
            .parse()
            .expect("a port");
        let status = replay(
            other_port,
            &captured.metadata,
            captured.ticket.to_vec(),
            "replay to another worker",
        )
        .await;
        assert_refused(&status, "replay to another worker");

        // The cluster still answers.
        assert_eq!(client.scalar("SELECT sum(k) FROM replay").await, "45150");
        let _ = stop.send(());
        let _ = server.await;
        cluster.shutdown().await;
    })
    .await
    .expect("the test finishes within 120 s");
}
