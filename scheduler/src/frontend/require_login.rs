//! [`RequireLogin`]: the gate in front of the Flight SQL service. Every call but the
//! handshake (where clients log in) must carry valid credentials — a bearer token, or none
//! while the coordinator trusts its clients ([`crate::auth::Authenticator::principal`]) —
//! whatever method it calls, implemented or not. The call's [`Principal`] travels to the
//! service in the request's extensions.
//!
//! One exception: a `DoAction` without credentials but with a request MAC of the cluster
//! secret (`x-shardfusion-auth`) passes, for the action workers register with; the service
//! checks that MAC, and refuses every other action without a principal.

use std::sync::Arc;
use std::task::{Context, Poll};

use shardfusion_common::auth::request_mac::AUTH_HEADER;
use tonic::Status;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

use crate::auth::Principal;
use crate::cluster::shared_state::Cluster;

const HANDSHAKE: &str = "/arrow.flight.protocol.FlightService/Handshake";
const DO_ACTION: &str = "/arrow.flight.protocol.FlightService/DoAction";

/// Wraps a gRPC service so that only authenticated calls reach it.
#[derive(Clone)]
pub struct RequireLogin<S> {
    inner: S,
    cluster: Arc<Cluster>,
}

impl<S> RequireLogin<S> {
    pub fn new(inner: S, cluster: Arc<Cluster>) -> Self {
        Self { inner, cluster }
    }
}

impl<S, B> Service<http::Request<B>> for RequireLogin<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if request.uri().path() != HANDSHAKE {
            let header = request.headers().get(http::header::AUTHORIZATION);
            let credentials = match header.map(|h| h.to_str()) {
                None => None,
                Some(Ok(value)) => Some(value),
                Some(Err(_)) => {
                    let status = Status::unauthenticated("unreadable authorization header");
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            };
            let roles = Arc::clone(&self.cluster.catalog.snapshot().roles);
            match self.cluster.auth.principal(&roles, credentials) {
                Ok(principal) => {
                    request.extensions_mut().insert::<Principal>(principal);
                }
                // A worker registering (see the module's documentation).
                Err(_)
                    if credentials.is_none()
                        && request.uri().path() == DO_ACTION
                        && request.headers().contains_key(AUTH_HEADER) => {}
                Err(refused) => {
                    let status: Status = refused.into();
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        // The service that was polled ready handles this call; a clone waits for the next.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(inner.call(request))
    }
}

impl<S: NamedService> NamedService for RequireLogin<S> {
    const NAME: &'static str = S::NAME;
}
