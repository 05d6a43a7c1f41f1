//! TLS on the cluster's links, with rustls through tonic.
//!
//! - A node serving TLS has an identity: its certificate chain and private key (PEM files,
//!   `--tls-cert`/`--tls-key`), loaded by [`TlsIdentity::load`].
//! - A node reaching other nodes over TLS trusts the certificate authority that signed their
//!   certificates (`--tls-ca`, [`ClusterTls::load`]); its peer URLs (`http://host:port`, as
//!   the catalog keeps them) are then dialled as `https://host:port`, and the peer's
//!   certificate must name the host it is dialled by (a DNS name or an IP address).
//!
//! TLS protects the links; who may call a node is still decided by the cluster secret's
//! request MACs (`crate::auth`), which travel inside it.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Why a TLS file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what} (expected a \"-----BEGIN {label}\" block)")]
    NotPem {
        what: &'static str,
        label: &'static str,
        path: PathBuf,
    },
}

fn read_pem(
    path: &Path,
    what: &'static str,
    label: &'static str,
    accept: &[&str],
) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    if !accept
        .iter()
        .any(|block| text.contains(&format!("-----BEGIN {block}")))
    {
        return Err(TlsError::NotPem {
            what,
            label,
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// A node's certificate chain and private key, for serving TLS.
#[derive(Clone)]
pub struct TlsIdentity {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(..)")
    }
}

impl TlsIdentity {
    /// Reads a PEM certificate chain and its PEM private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            cert: read_pem(cert, "certificate", "CERTIFICATE", &["CERTIFICATE"])?,
            key: read_pem(
                key,
                "private key",
                "PRIVATE KEY",
                &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
            )?,
        })
    }

    /// From PEM text already in memory.
    pub fn from_pem(cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// The server side of TLS with this identity.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key))
    }
}

/// How a node reaches the other nodes: over TLS, trusting one certificate authority.
#[derive(Clone)]
pub struct ClusterTls {
    ca: Vec<u8>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterTls(..)")
    }
}

impl ClusterTls {
    /// Trusts the PEM certificate(s) in `ca`.
    pub fn load(ca: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            ca: read_pem(ca, "CA certificate", "CERTIFICATE", &["CERTIFICATE"])?,
        })
    }

    /// From PEM text already in memory.
    pub fn from_pem(ca: impl Into<Vec<u8>>) -> Self {
        Self { ca: ca.into() }
    }

    /// The client side of TLS: the peer must present a certificate signed by the CA.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca))
    }

    /// `url` (`http://host:port`) as dialled over TLS.
    pub fn secure_url(url: &str) -> String {
        match url.strip_prefix("http://") {
            Some(rest) => format!("https://{rest}"),
            None => url.to_string(),
        }
    }
}
