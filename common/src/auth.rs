//! The shared cluster secret that every coordinator–worker call carries.
//!
//! Workers refuse any request without it; applications never learn it.

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::wire::CLUSTER_SECRET_HEADER;

/// The secret shared by the nodes of one cluster.
#[derive(Clone)]
pub struct ClusterSecret(String);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// A random secret, for an embedded cluster whose nodes all live in one process.
    pub fn generate() -> Self {
        Self(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Adds the secret to outgoing request metadata.
    pub fn attach(&self, metadata: &mut MetadataMap) -> Result<(), Status> {
        let value = self
            .0
            .parse()
            .map_err(|_| Status::invalid_argument("the cluster secret must be printable ASCII"))?;
        metadata.insert(CLUSTER_SECRET_HEADER, value);
        Ok(())
    }

    /// Checks incoming request metadata, in time independent of where the strings differ.
    pub fn verify(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(given) = metadata.get(CLUSTER_SECRET_HEADER) else {
            return Err(Status::unauthenticated(
                "this is a ShardFusion worker endpoint: requests must come from its cluster's \
                 coordinator and carry the cluster secret",
            ));
        };
        let given = given.as_bytes();
        let expected = self.0.as_bytes();
        let mut diff = given.len() ^ expected.len();
        for (i, b) in expected.iter().enumerate() {
            diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ b);
        }
        if diff == 0 {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "wrong cluster secret: check --cluster-secret / SHARDFUSION_CLUSTER_SECRET on \
                 the coordinator and the workers",
            ))
        }
    }
}
