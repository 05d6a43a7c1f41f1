//! Per-request MACs: how every coordinator–worker call shows that its sender knows the
//! cluster secret, without sending it.
//!
//! A call carries the header [`AUTH_HEADER`]:
//!
//! ```text
//! x-shardfusion-auth: v1 ts=<unix ms> nonce=<32 hex> aud=<audience> mac=<64 hex>
//! mac = HMAC-SHA256(request key, "shardfusion-request-v1" | method | ts | nonce | aud
//!                                | SHA-256(command))
//! ```
//!
//! The request key is derived from the secret ([`super::ClusterSecret`]). The command is what
//! decides what the call does: a `DoGet` ticket, a `DoAction`'s type and body, a `DoPut`'s
//! first descriptor. So a captured header is useless for anything but the one call it came
//! with: another command fails the MAC, another node fails the audience, a second use fails
//! the nonce, and a later use fails the timestamp (hosts need clocks synchronized to within
//! [`MAX_CLOCK_SKEW`]). The rows of a `DoPut` stream are not covered: protecting data in
//! transit is TLS's job.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::Mac;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tonic::metadata::{MetadataMap, MetadataValue};

use super::replay_guard::{ReplayGuard, ReplayRefusal};
use super::{ClusterSecret, update_field};

/// gRPC metadata key of the request MAC.
pub const AUTH_HEADER: &str = "x-shardfusion-auth";

/// How far a request's timestamp may be from the receiver's clock, either way.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Nonces a receiver remembers at most (about 40 MB): 8,000 requests a second sustained over
/// the two-minute window.
pub const REPLAY_CAPACITY: usize = 1_000_000;

const DOMAIN: &[u8] = b"shardfusion-request-v1";

/// The Flight calls nodes make to each other, by gRPC method path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlightMethod {
    DoGet,
    DoPut,
    DoAction,
    ListActions,
}

impl FlightMethod {
    pub fn path(self) -> &'static str {
        match self {
            Self::DoGet => "/arrow.flight.protocol.FlightService/DoGet",
            Self::DoPut => "/arrow.flight.protocol.FlightService/DoPut",
            Self::DoAction => "/arrow.flight.protocol.FlightService/DoAction",
            Self::ListActions => "/arrow.flight.protocol.FlightService/ListActions",
        }
    }
}

/// The node a request is meant for: a worker by its stable identity (its `worker_id`), or the
/// coordinator. A request MAC'd for one audience is refused by every other node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Audience(String);

impl Audience {
    pub const COORDINATOR: &'static str = "coordinator";

    pub fn coordinator() -> Self {
        Self(Self::COORDINATOR.to_string())
    }

    /// A worker, by the identity it proved (see [`super::membership`]).
    pub fn worker(worker_uuid: &str) -> Result<Self, AuthError> {
        let valid = !worker_uuid.is_empty()
            && worker_uuid.len() <= 64
            && worker_uuid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid && worker_uuid != Self::COORDINATOR {
            Ok(Self(worker_uuid.to_string()))
        } else {
            Err(AuthError::BadIdentity {
                identity: worker_uuid.chars().take(80).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a request's MAC was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "this is an internal ShardFusion endpoint: requests must come from a node of its \
         cluster and carry a {AUTH_HEADER} header"
    )]
    Missing,
    #[error("malformed {AUTH_HEADER} header: {reason}")]
    Malformed { reason: &'static str },
    #[error(
        "the request is not signed with this cluster's secret: check that the coordinator and \
         every worker are started with the same --cluster-secret / SHARDFUSION_CLUSTER_SECRET"
    )]
    BadMac,
    #[error(
        "the request was meant for node {given}, but this is node {expected}: the \
         coordinator's address book is stale (restart the worker so it registers again)"
    )]
    WrongAudience { expected: String, given: String },
    #[error(
        "the request's timestamp is {skew_ms} ms away from this node's clock (at most {} s \
         allowed): synchronize the clocks of the cluster's hosts (NTP)",
        MAX_CLOCK_SKEW.as_secs()
    )]
    Stale { skew_ms: i128 },
    #[error("the request was already received once (replayed nonce)")]
    Replayed,
    #[error("too many requests within the replay window; retry shortly")]
    ReplayCacheFull,
    #[error("{identity:?} is not a valid worker identity")]
    BadIdentity { identity: String },
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::Missing
            | AuthError::Malformed { .. }
            | AuthError::Stale { .. }
            | AuthError::Replayed => tonic::Status::unauthenticated(message),
            AuthError::BadMac | AuthError::WrongAudience { .. } => {
                tonic::Status::permission_denied(message)
            }
            AuthError::ReplayCacheFull => tonic::Status::resource_exhausted(message),
            AuthError::BadIdentity { .. } => tonic::Status::invalid_argument(message),
        }
    }
}

/// SHA-256 over the command's parts, each length-prefixed.
pub fn command_digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ClusterSecret {
    fn request_tag(
        &self,
        method: FlightMethod,
        ts_ms: u64,
        nonce: u128,
        audience: &str,
        digest: &[u8; 32],
    ) -> hmac::Hmac<Sha256> {
        let mut mac = self.request_mac();
        update_field(&mut mac, DOMAIN);
        update_field(&mut mac, method.path().as_bytes());
        mac.update(&ts_ms.to_be_bytes());
        mac.update(&nonce.to_be_bytes());
        update_field(&mut mac, audience.as_bytes());
        mac.update(digest);
        mac
    }

    /// Adds the request MAC for one call of `method` to `audience` whose command is `parts`.
    pub fn sign(
        &self,
        metadata: &mut MetadataMap,
        method: FlightMethod,
        audience: &Audience,
        parts: &[&[u8]],
    ) {
        self.sign_at(metadata, method, audience, parts, now_ms(), rand::random());
    }

    fn sign_at(
        &self,
        metadata: &mut MetadataMap,
        method: FlightMethod,
        audience: &Audience,
        parts: &[&[u8]],
        ts_ms: u64,
        nonce: u128,
    ) {
        let digest = command_digest(parts);
        let tag = self
            .request_tag(method, ts_ms, nonce, audience.as_str(), &digest)
            .finalize()
            .into_bytes();
        let header = format!(
            "v1 ts={ts_ms} nonce={nonce:032x} aud={audience} mac={}",
            hex::encode(tag)
        );
        // Only ASCII digits, hex and the audience's [A-Za-z0-9_-] go in: always a valid value.
        if let Ok(value) = MetadataValue::try_from(header) {
            metadata.insert(AUTH_HEADER, value);
        }
    }
}

/// The fields of a parsed [`AUTH_HEADER`].
struct Header<'a> {
    ts_ms: u64,
    nonce: u128,
    audience: &'a str,
    mac: Vec<u8>,
}

fn parse(value: &str) -> Result<Header<'_>, AuthError> {
    let malformed = |reason| AuthError::Malformed { reason };
    let mut fields = value.split(' ');
    if fields.next() != Some("v1") {
        return Err(malformed("unknown version (expected v1)"));
    }
    let mut field = |key: &str| field_value(fields.next(), key);
    let ts_ms = field("ts")
        .and_then(|t| t.parse().ok())
        .ok_or(malformed("bad ts"))?;
    let nonce = field("nonce")
        .filter(|n| n.len() == 32)
        .and_then(|n| u128::from_str_radix(n, 16).ok())
        .ok_or(malformed("bad nonce"))?;
    let audience = field("aud").ok_or(malformed("bad aud"))?;
    let mac = field("mac")
        .and_then(|m| hex::decode(m).ok())
        .filter(|m| m.len() == 32)
        .ok_or(malformed("bad mac"))?;
    if fields.next().is_some() {
        return Err(malformed("trailing fields"));
    }
    Ok(Header {
        ts_ms,
        nonce,
        audience,
        mac,
    })
}

/// The value of `field` if it is `key=value`.
fn field_value<'a>(field: Option<&'a str>, key: &str) -> Option<&'a str> {
    field?.strip_prefix(key)?.strip_prefix('=')
}

/// Checks the request MACs a node receives: signed with the cluster secret, for this node,
/// recent, and not seen before.
#[derive(Debug)]
pub struct RequestVerifier {
    secret: ClusterSecret,
    audience: Audience,
    seen: Mutex<ReplayGuard>,
}

impl RequestVerifier {
    pub fn new(secret: ClusterSecret, audience: Audience) -> Self {
        Self {
            secret,
            audience,
            seen: Mutex::new(ReplayGuard::new(REPLAY_CAPACITY)),
        }
    }

    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// Accepts the call if its metadata carries a valid MAC for `method` and command `parts`.
    pub fn verify(
        &self,
        metadata: &MetadataMap,
        method: FlightMethod,
        parts: &[&[u8]],
    ) -> Result<(), AuthError> {
        self.verify_at(metadata, method, parts, now_ms())
    }

    fn verify_at(
        &self,
        metadata: &MetadataMap,
        method: FlightMethod,
        parts: &[&[u8]],
        now_ms: u64,
    ) -> Result<(), AuthError> {
        let value = metadata.get(AUTH_HEADER).ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::Malformed {
            reason: "not ASCII",
        })?;
        let header = parse(value)?;
        let digest = command_digest(parts);
        // Constant-time comparison (hmac's verify_slice).
        self.secret
            .request_tag(method, header.ts_ms, header.nonce, header.audience, &digest)
            .verify_slice(&header.mac)
            .map_err(|_| AuthError::BadMac)?;
        if header.audience != self.audience.as_str() {
            return Err(AuthError::WrongAudience {
                expected: self.audience.to_string(),
                given: header.audience.to_string(),
            });
        }
        let skew_ms = i128::from(header.ts_ms) - i128::from(now_ms);
        if skew_ms.unsigned_abs() > MAX_CLOCK_SKEW.as_millis() {
            return Err(AuthError::Stale { skew_ms });
        }
        // Remember the nonce until its timestamp leaves the window.
        let expires_ms = header
            .ts_ms
            .saturating_add(MAX_CLOCK_SKEW.as_millis() as u64);
        self.seen
            .lock()
            .check_and_insert(header.nonce, expires_ms, now_ms)
            .map_err(|refusal| match refusal {
                ReplayRefusal::Replayed => AuthError::Replayed,
                ReplayRefusal::Full => AuthError::ReplayCacheFull,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn worker() -> Audience {
        Audience::worker("5f0c2a1e-8d1b-4c55-9a53-0c6f9bb1b2aa").expect("valid")
    }

    fn signed(
        secret: &str,
        audience: &Audience,
        ticket: &[u8],
        ts: u64,
        nonce: u128,
    ) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        ClusterSecret::new(secret).sign_at(
            &mut metadata,
            FlightMethod::DoGet,
            audience,
            &[ticket],
            ts,
            nonce,
        );
        metadata
    }

    fn verifier() -> RequestVerifier {
        RequestVerifier::new(ClusterSecret::new("s3cret"), worker())
    }

    #[test]
    fn accepts_a_fresh_request_once() {
        let v = verifier();
        let m = signed("s3cret", &worker(), b"ticket", NOW, 1);
        assert_eq!(
            v.verify_at(&m, FlightMethod::DoGet, &[b"ticket"], NOW),
            Ok(())
        );
        assert_eq!(
            v.verify_at(&m, FlightMethod::DoGet, &[b"ticket"], NOW + 10),
            Err(AuthError::Replayed)
        );
    }

    #[test]
    fn the_header_does_not_contain_the_secret() {
        let m = signed("s3cret", &worker(), b"ticket", NOW, 1);
        let value = m.get(AUTH_HEADER).expect("header").to_str().expect("ascii");
        assert!(!value.contains("s3cret"), "{value}");
        assert!(value.starts_with("v1 ts=1800000000000 nonce="), "{value}");
    }

    #[test]
    fn refuses_another_secret() {
        let m = signed("other", &worker(), b"ticket", NOW, 1);
        assert_eq!(
            verifier().verify_at(&m, FlightMethod::DoGet, &[b"ticket"], NOW),
            Err(AuthError::BadMac)
        );
    }

    #[test]
    fn refuses_a_tampered_command_or_method() {
        let v = verifier();
        let m = signed("s3cret", &worker(), b"ticket", NOW, 1);
        assert_eq!(
            v.verify_at(&m, FlightMethod::DoGet, &[b"forged"], NOW),
            Err(AuthError::BadMac)
        );
        assert_eq!(
            v.verify_at(&m, FlightMethod::DoAction, &[b"ticket"], NOW),
            Err(AuthError::BadMac)
        );
        // Moving bytes between parts changes the digest too.
        assert_ne!(
            command_digest(&[b"ab", b"c"]),
            command_digest(&[b"a", b"bc"])
        );
    }

    #[test]
    fn refuses_another_audience() {
        let other = Audience::worker("another-worker").expect("valid");
        let m = signed("s3cret", &other, b"ticket", NOW, 1);
        assert!(matches!(
            verifier().verify_at(&m, FlightMethod::DoGet, &[b"ticket"], NOW),
            Err(AuthError::WrongAudience { .. })
        ));
        let to_coordinator = signed("s3cret", &Audience::coordinator(), b"ticket", NOW, 1);
        assert!(matches!(
            verifier().verify_at(&to_coordinator, FlightMethod::DoGet, &[b"ticket"], NOW),
            Err(AuthError::WrongAudience { .. })
        ));
    }

    #[test]
    fn refuses_stale_and_future_timestamps() {
        let v = verifier();
        let skew = MAX_CLOCK_SKEW.as_millis() as u64;
        let old = signed("s3cret", &worker(), b"ticket", NOW - skew - 1, 1);
        assert!(matches!(
            v.verify_at(&old, FlightMethod::DoGet, &[b"ticket"], NOW),
            Err(AuthError::Stale { .. })
        ));
        let future = signed("s3cret", &worker(), b"ticket", NOW + skew + 1, 2);
        assert!(matches!(
            v.verify_at(&future, FlightMethod::DoGet, &[b"ticket"], NOW),
            Err(AuthError::Stale { .. })
        ));
        let edge = signed("s3cret", &worker(), b"ticket", NOW - skew, 3);
        assert_eq!(
            v.verify_at(&edge, FlightMethod::DoGet, &[b"ticket"], NOW),
            Ok(())
        );
    }

    #[test]
    fn refuses_missing_and_malformed_headers() {
        let v = verifier();
        assert_eq!(
            v.verify_at(&MetadataMap::new(), FlightMethod::DoGet, &[], NOW),
            Err(AuthError::Missing)
        );
        for bad in [
            "s3cret",
            "v2 ts=1 nonce=00000000000000000000000000000001 aud=x mac=00",
            "v1 ts=x nonce=00000000000000000000000000000001 aud=x mac=00",
            "v1 ts=1 nonce=1 aud=x mac=00",
        ] {
            let mut m = MetadataMap::new();
            m.insert(AUTH_HEADER, bad.parse().expect("ascii"));
            assert!(matches!(
                v.verify_at(&m, FlightMethod::DoGet, &[], NOW),
                Err(AuthError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn worker_identities_cannot_inject_fields() {
        assert!(Audience::worker("a b").is_err());
        assert!(Audience::worker("a mac=00").is_err());
        assert!(Audience::worker("").is_err());
        assert!(Audience::worker(Audience::COORDINATOR).is_err());
    }
}
