//! Membership proofs: a host shows it knows the cluster secret before the coordinator sends
//! it anything derived from the secret.
//!
//! The coordinator sends a fresh random [`Challenge`] (action `shardfusion.prove_membership`,
//! which workers answer without authentication). The worker answers with its stable identity
//! and `HMAC-SHA256(proof key, "shardfusion-worker-proof-v1" | challenge | identity)`. The proof
//! key is derived from the secret separately from the request key, so answering challenges for
//! anyone who asks gives nothing that verifies as a request MAC; a fresh challenge makes old
//! answers useless.
//!
//! Limit (until mTLS): a proof shows that *some* cluster member answered, not that it runs at
//! the address asked; a TCP relay to a real worker is indistinguishable from a port forward.
//! The coordinator therefore refuses an identity that is already a node at another address.

use hmac::Mac;

use super::{ClusterSecret, update_field};

const DOMAIN: &[u8] = b"shardfusion-worker-proof-v1";
/// Bytes of a challenge; workers refuse other lengths.
pub const CHALLENGE_BYTES: usize = 32;

/// A fresh random challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge([u8; CHALLENGE_BYTES]);

impl Challenge {
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// A challenge received on the wire.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A worker's answer to a [`Challenge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipProof {
    pub worker_uuid: String,
    pub proof: Vec<u8>,
}

impl ClusterSecret {
    fn proof_tag(&self, challenge: &Challenge, worker_uuid: &str) -> hmac::Hmac<sha2::Sha256> {
        let mut mac = self.proof_mac();
        update_field(&mut mac, DOMAIN);
        update_field(&mut mac, challenge.as_bytes());
        update_field(&mut mac, worker_uuid.as_bytes());
        mac
    }

    /// The worker's answer to `challenge`.
    pub fn prove_membership(&self, challenge: &Challenge, worker_uuid: &str) -> MembershipProof {
        MembershipProof {
            worker_uuid: worker_uuid.to_string(),
            proof: self
                .proof_tag(challenge, worker_uuid)
                .finalize()
                .into_bytes()
                .to_vec(),
        }
    }

    /// Whether `answer` proves knowledge of this secret for `challenge` (constant time).
    pub fn check_membership(&self, challenge: &Challenge, answer: &MembershipProof) -> bool {
        self.proof_tag(challenge, &answer.worker_uuid)
            .verify_slice(&answer.proof)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_only_for_its_secret_challenge_and_identity() {
        let secret = ClusterSecret::new("s3cret");
        let challenge = Challenge::random();
        let proof = secret.prove_membership(&challenge, "w1");
        assert!(secret.check_membership(&challenge, &proof));
        assert!(!ClusterSecret::new("other").check_membership(&challenge, &proof));
        assert!(!secret.check_membership(&Challenge::random(), &proof));
        let renamed = MembershipProof {
            worker_uuid: "w2".into(),
            proof: proof.proof.clone(),
        };
        assert!(!secret.check_membership(&challenge, &renamed));
        let forged = MembershipProof {
            worker_uuid: "w1".into(),
            proof: vec![0; 32],
        };
        assert!(!secret.check_membership(&challenge, &forged));
    }

    #[test]
    fn challenges_have_a_fixed_length() {
        assert!(Challenge::from_bytes(&[0; CHALLENGE_BYTES]).is_some());
        assert!(Challenge::from_bytes(&[0; 8]).is_none());
    }
}
