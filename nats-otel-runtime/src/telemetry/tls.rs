//! TLS for OTLP export to an `https://` collector, on either protocol.
//!
//! The collector is trusted through the CA file `OTEL_EXPORTER_OTLP_CERTIFICATE`
//! names, or else the system's roots (as the other SDKs do: a CA file replaces
//! the system's roots, it does not add to them). A client certificate and key,
//! when both are named, authenticate the exporter (mutual TLS). The files are
//! read and checked when [`init`](super::init) runs, so a wrong path fails
//! there, not at the first export.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TelemetryError;
use super::settings::TlsFiles;

/// The PEM files, read and parsed.
struct Loaded {
    /// The CA file's text and certificates, when one is named.
    ca: Option<(Vec<u8>, Vec<CertificateDer<'static>>)>,
    /// The client's chain and key: their text, then parsed.
    client: Option<ClientPem>,
}

struct ClientPem {
    chain_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TelemetryError> {
    std::fs::read(path)
        .map_err(|e| TelemetryError::with_source(format!("cannot read {what} {}", path.display()), e))
}

fn certificates(pem: &[u8], path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TelemetryError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TelemetryError::with_source(format!("{what} {} is not valid PEM", path.display()), e))?;
    if certificates.is_empty() {
        return Err(TelemetryError::config(format!("{what} {} holds no certificate", path.display())));
    }
    Ok(certificates)
}

impl Loaded {
    fn read(files: &TlsFiles) -> Result<Self, TelemetryError> {
        const CA: &str = "the CA file (OTEL_EXPORTER_OTLP_CERTIFICATE)";
        const CHAIN: &str = "the client certificate (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)";
        const KEY: &str = "the client key (OTEL_EXPORTER_OTLP_CLIENT_KEY)";
        let ca = match &files.certificate {
            Some(path) => {
                let pem = read(path, CA)?;
                let parsed = certificates(&pem, path, CA)?;
                Some((pem, parsed))
            }
            None => None,
        };
        let client = match &files.client {
            Some(identity) => {
                let chain_pem = read(&identity.certificate, CHAIN)?;
                let chain = certificates(&chain_pem, &identity.certificate, CHAIN)?;
                let key_pem = read(&identity.key, KEY)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    TelemetryError::with_source(
                        format!("{KEY} {} holds no PEM private key", identity.key.display()),
                        e,
                    )
                })?;
                Some(ClientPem { chain_pem, key_pem, chain, key })
            }
            None => None,
        };
        Ok(Self { ca, client })
    }
}

/// The gRPC exporter's TLS.
pub(super) fn grpc(files: &TlsFiles) -> Result<ClientTlsConfig, TelemetryError> {
    let loaded = Loaded::read(files)?;
    let mut config = match loaded.ca {
        Some((pem, _)) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    if let Some(client) = loaded.client {
        config = config.identity(Identity::from_pem(client.chain_pem, client.key_pem));
    }
    Ok(config)
}

/// The HTTP exporter's client: `reqwest`'s blocking client (the one
/// opentelemetry-otlp would build) over rustls with `ring`, the crypto
/// async-nats already builds. Built here for plain text too (`files` is `None`):
/// reqwest, built with TLS but no process-wide crypto provider, panics when it
/// has to choose one itself.
pub(super) fn http_client(
    files: Option<&TlsFiles>,
    timeout: Duration,
) -> Result<reqwest::blocking::Client, TelemetryError> {
    let loaded = match files {
        Some(files) => Some(Loaded::read(files)?),
        None => None,
    };
    let mut roots = rustls::RootCertStore::empty();
    let (ca, client) = match loaded {
        Some(loaded) => (Some(loaded.ca), loaded.client),
        None => (None, None),
    };
    match ca {
        // Plain text: nothing to trust.
        None => {}
        Some(Some((_, certificates))) => {
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| TelemetryError::with_source("a CA certificate was refused", e))?;
            }
        }
        Some(None) => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(TelemetryError::config(format!(
                    "no system root certificates to trust an https:// collector ({} errors reading them); \
                     install them (Debian: ca-certificates) or name a CA file in OTEL_EXPORTER_OTLP_CERTIFICATE",
                    native.errors.len()
                )));
            }
        }
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TelemetryError::with_source("TLS set-up", e))?
            .with_root_certificates(roots);
    let config = match client {
        Some(client) => builder
            .with_client_auth_cert(client.chain, client.key)
            .map_err(|e| TelemetryError::with_source("the client certificate and key do not match", e))?,
        None => builder.with_no_client_auth(),
    };
    // The blocking client runs its own runtime: built (and dropped) on a thread
    // of its own, never inside the application's Tokio runtime.
    std::thread::Builder::new()
        .name("otlp-http-client".into())
        .spawn(move || {
            reqwest::blocking::Client::builder().tls_backend_preconfigured(config).timeout(timeout).build()
        })
        .map_err(|e| TelemetryError::with_source("cannot start a thread for the HTTP client", e))?
        .join()
        .map_err(|_| TelemetryError::config("building the HTTP client panicked"))?
        .map_err(|e| TelemetryError::with_source("cannot build the HTTP client", e))
}
