//! [`FakeNode`]: a Flight server that is not a member of any cluster. It accepts every call,
//! records each request's metadata, and answers membership challenges with a forged proof,
//! as a hostile host handed to `citus_add_node` would.

use std::sync::Arc;

use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::Mutex;
use tonic::{Request, Response, Status, Streaming};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `DoGet`, `DoPut`, `DoAction`, ...
    pub method: &'static str,
    /// Every ASCII metadata entry, as (key, value).
    pub headers: Vec<(String, String)>,
    /// The action type, for `DoAction`.
    pub action: Option<String>,
    /// `FlightData` messages received, for `DoPut`.
    pub messages: usize,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl Recorder {
    fn record(&self, method: &'static str, metadata: &tonic::metadata::MetadataMap) -> usize {
        let headers = metadata
            .iter()
            .filter_map(|entry| match entry {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.to_string(), v.to_str().unwrap_or_default().to_string()))
                }
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        let mut all = self.0.lock().expect("recorder lock");
        all.push(Recorded {
            method,
            headers,
            action: None,
            messages: 0,
        });
        all.len() - 1
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut Recorded)) {
        if let Some(r) = self.0.lock().expect("recorder lock").get_mut(index) {
            change(r);
        }
    }
}

/// A forged `ProveMembershipResponse`: an identity and 32 bytes that are not an HMAC of the
/// challenge (protobuf: field 1 string, field 2 bytes).
fn forged_proof() -> Vec<u8> {
    let uuid = b"00000000-0000-4000-8000-000000000000";
    let mut body = vec![0x0a, uuid.len() as u8];
    body.extend_from_slice(uuid);
    body.extend_from_slice(&[0x12, 32]);
    body.extend_from_slice(&[7; 32]);
    body
}

#[derive(Clone, Default)]
struct FakeService {
    recorder: Recorder,
}

type Stream<T> = BoxStream<'static, Result<T, Status>>;

#[tonic::async_trait]
impl FlightService for FakeService {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;
    type DoExchangeStream = Stream<FlightData>;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.recorder.record("Handshake", request.metadata());
        Ok(Response::new(futures::stream::empty().boxed()))
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.recorder.record("ListFlights", request.metadata());
        Ok(Response::new(futures::stream::empty().boxed()))
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.recorder.record("GetFlightInfo", request.metadata());
        Err(Status::unimplemented("fake"))
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        self.recorder.record("PollFlightInfo", request.metadata());
        Err(Status::unimplemented("fake"))
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.recorder.record("GetSchema", request.metadata());
        Err(Status::unimplemented("fake"))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        self.recorder.record("DoGet", request.metadata());
        Ok(Response::new(futures::stream::empty().boxed()))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let index = self.recorder.record("DoPut", request.metadata());
        let mut stream = request.into_inner();
        let mut messages = 0;
        while let Some(Ok(_)) = stream.next().await {
            messages += 1;
        }
        self.recorder.update(index, |r| r.messages = messages);
        Ok(Response::new(
            futures::stream::iter([Ok(PutResult::default())]).boxed(),
        ))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let index = self.recorder.record("DoAction", request.metadata());
        let kind = request.get_ref().r#type.clone();
        self.recorder.update(index, |r| r.action = Some(kind));
        let result = arrow_flight::Result {
            body: forged_proof().into(),
        };
        Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.recorder.record("ListActions", request.metadata());
        Ok(Response::new(futures::stream::empty().boxed()))
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.recorder.record("DoExchange", request.metadata());
        Err(Status::unimplemented("fake"))
    }
}

/// A running fake node on `127.0.0.1:port`, stopped by [`FakeNode::stop`] or on drop.
pub struct FakeNode {
    pub port: u16,
    recorder: Recorder,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeNode {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake node");
        let port = listener.local_addr().expect("fake node address").port();
        let service = FakeService::default();
        let recorder = service.recorder.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(FlightServiceServer::new(service))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            port,
            recorder,
            stop: Some(stop),
            server,
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorder.0.lock().expect("recorder lock").clone()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.server).await;
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.server.abort();
    }
}
