//! The TLS flags: the certificate a node serves (`--tls-cert`/`--tls-key`), and the authority
//! it trusts for the other nodes (`--tls-ca`).

use std::path::PathBuf;

use shardfusion_common::tls::{ClusterTls, TlsIdentity};

/// `--tls-cert` and `--tls-key`: serve TLS.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeTlsArgs {
    /// Serve TLS with this PEM certificate (chain); needs --tls-key. Clients then connect
    /// with grpc+tls://.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServeTlsArgs {
    /// The identity to serve, if TLS was asked for; errors name the file.
    pub fn identity(&self) -> Result<Option<TlsIdentity>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsIdentity::load(cert, key)
                .map(Some)
                .map_err(|e| e.to_string()),
            _ => Ok(None),
        }
    }
}

/// `--tls-ca`: reach the other nodes over TLS.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterTlsArgs {
    /// Reach the other nodes of the cluster over TLS, trusting the PEM certificate
    /// authority in this file (it signed every node's --tls-cert). All nodes of a cluster
    /// use TLS between them, or none.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
}

impl ClusterTlsArgs {
    pub fn cluster_tls(&self) -> Result<Option<ClusterTls>, String> {
        self.tls_ca
            .as_deref()
            .map(ClusterTls::load)
            .transpose()
            .map_err(|e| e.to_string())
    }
}
