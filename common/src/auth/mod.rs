//! Cluster authentication: how the coordinator and the workers prove to each other that they
//! know the cluster secret, without the secret (or anything that lets a listener impersonate a
//! node) ever crossing the wire.
//!
//! - [`ClusterSecret`]: the shared secret, and the two keys derived from it.
//! - [`request_mac`]: every internal call carries a per-request MAC over its method, its
//!   target ([`Audience`]), a timestamp, a nonce and a digest of its command.
//! - [`replay_guard`]: the receiver's memory of nonces it accepted, so a captured request
//!   cannot be sent twice.
//! - [`membership`]: before the coordinator sends a host anything derived from the secret, the
//!   host answers a fresh challenge with proof that it knows the secret.
//!
//! This module never logs, prints or serializes the secret; only the operator-facing CLI asks
//! for it ([`ClusterSecret::reveal`]) to show or store a generated one.

pub mod membership;
pub mod replay_guard;
pub mod request_mac;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub use membership::{Challenge, MembershipProof};
pub use request_mac::{Audience, AuthError, FlightMethod, RequestVerifier};

type HmacSha256 = Hmac<Sha256>;

/// Key-derivation labels: one key per purpose, so a MAC made for one purpose can never be
/// accepted for another (a worker answers membership challenges for anyone who asks).
const REQUEST_KEY_LABEL: &[u8] = b"shardfusion-request-key-v1";
const PROOF_KEY_LABEL: &[u8] = b"shardfusion-worker-proof-key-v1";

/// The secret shared by the nodes of one cluster, with the keys derived from it.
#[derive(Clone)]
pub struct ClusterSecret {
    secret: String,
    request_key: [u8; 32],
    proof_key: [u8; 32],
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        Self {
            request_key: derive_key(&secret, REQUEST_KEY_LABEL),
            proof_key: derive_key(&secret, PROOF_KEY_LABEL),
            secret,
        }
    }

    /// A random secret (256 bits, hex): for an embedded cluster, or a coordinator started
    /// without one.
    pub fn generate() -> Self {
        Self::new(hex::encode(rand::random::<[u8; 32]>()))
    }

    /// The secret itself, for the operator: printing a generated secret once and storing it.
    /// Nothing that talks to the network may call this.
    pub fn reveal(&self) -> &str {
        &self.secret
    }

    fn request_mac(&self) -> HmacSha256 {
        keyed(&self.request_key)
    }

    fn proof_mac(&self) -> HmacSha256 {
        keyed(&self.proof_key)
    }
}

fn keyed(key: &[u8; 32]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

fn derive_key(secret: &str, label: &[u8]) -> [u8; 32] {
    let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// Feeds `field` into `mac` with its length first, so that no two different field lists give
/// the same input.
fn update_field(mac: &mut HmacSha256, field: &[u8]) {
    mac.update(&(field.len() as u64).to_be_bytes());
    mac.update(field);
}
