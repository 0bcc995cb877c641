//! Certificates made in the test: a CA, a server certificate for `localhost`
//! and `127.0.0.1`, and a client certificate, as PEM files (pure Rust, no
//! openssl binary).

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

/// PEM files in a temporary directory, removed on drop: `ca.pem`, `server.pem`,
/// `server-key.pem`, `client.pem`, `client-key.pem`, and `other-ca.pem` (a CA
/// that signed none of them).
#[derive(Debug)]
pub struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    /// Makes a new CA and the certificates it signs.
    pub fn generate() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem);

        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        write("ca.pem", ca.self_signed(&ca_key)?.pem())?;
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        write("server.pem", server.signed_by(&server_key, &issuer)?.pem())?;
        write("server-key.pem", server_key.serialize_pem())?;

        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(vec!["exporter".to_owned()])?;
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        write("client.pem", client.signed_by(&client_key, &issuer)?.pem())?;
        write("client-key.pem", client_key.serialize_pem())?;

        let other_key = KeyPair::generate()?;
        let mut other = CertificateParams::new(Vec::<String>::new())?;
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        write("other-ca.pem", other.self_signed(&other_key)?.pem())?;
        Ok(Self { dir })
    }

    /// The path of one of the files.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The path of one of the files, as a string (for configuration files and
    /// environment variables).
    pub fn path_str(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}
