//! [`TestCertificates`]: a certificate authority and one node certificate signed by it, made
//! fresh for a test (rcgen), in memory and as PEM files for the command line.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use shardfusion_common::tls::{ClusterTls, TlsIdentity};

/// A CA and a certificate for `names` (host names or IP addresses) that it signed.
pub struct TestCertificates {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    dir: tempfile::TempDir,
}

impl TestCertificates {
    /// A new CA, and a certificate valid for every name in `names`.
    pub fn for_names(names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ShardFusion test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("node key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("node params");
        params
            .distinguished_name
            .push(DnType::CommonName, "ShardFusion test node");
        let cert = params.signed_by(&key, &issuer).expect("node certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let this = Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            dir,
        };
        std::fs::write(this.ca_path(), &this.ca_pem).expect("write CA");
        std::fs::write(this.cert_path(), &this.cert_pem).expect("write certificate");
        std::fs::write(this.key_path(), &this.key_pem).expect("write key");
        this
    }

    /// What a node serves.
    pub fn identity(&self) -> TlsIdentity {
        TlsIdentity::from_pem(self.cert_pem.clone(), self.key_pem.clone())
    }

    /// What a client or another node trusts.
    pub fn trust(&self) -> ClusterTls {
        ClusterTls::from_pem(self.ca_pem.clone())
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("node.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("node.key")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
