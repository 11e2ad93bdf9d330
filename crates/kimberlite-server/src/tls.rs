//! TLS with rustls (the `ring` provider): the server's certificate and key from PEM, HTTP/2
//! and HTTP/1.1 offered by ALPN, and optionally client certificates verified against
//! `--client-ca` (mutual TLS; a client without one may still present a token).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio_rustls::TlsAcceptor;

/// The server's TLS material, as PEM.
#[derive(Clone)]
pub struct TlsConfig {
    cert_chain_pem: Vec<u8>,
    key_pem: Vec<u8>,
    client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsConfig")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file (`--tls-cert`, `--tls-key`, `--client-ca`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM input holds nothing usable.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the material (a key not matching the certificate, an unusable CA).
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

impl TlsConfig {
    /// TLS with the certificate chain `cert_chain_pem` (leaf first) and its private key.
    #[must_use]
    pub fn from_pem(cert_chain_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        Self {
            cert_chain_pem,
            key_pem,
            client_ca_pem: None,
        }
    }

    /// Also asks clients for certificates and verifies them against the CA certificates in
    /// `client_ca_pem`.
    #[must_use]
    pub fn with_client_ca(mut self, client_ca_pem: Vec<u8>) -> Self {
        self.client_ca_pem = Some(client_ca_pem);
        self
    }

    /// Reads the PEM files of `--tls-cert`, `--tls-key` and, when given, `--client-ca`.
    pub fn from_files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let mut config = Self::from_pem(read("--tls-cert", cert)?, read("--tls-key", key)?);
        if let Some(ca) = client_ca {
            config = config.with_client_ca(read("--client-ca", ca)?);
        }
        // Parse now, so a bad file is refused before anything listens.
        acceptor(&config)?;
        Ok(config)
    }

    /// Whether client certificates are asked for and verified.
    #[must_use]
    pub fn is_mutual(&self) -> bool {
        self.client_ca_pem.is_some()
    }
}

fn certificates(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            what,
            reason: format!("not PEM certificates ({error})"),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no `BEGIN CERTIFICATE` block".into(),
        });
    }
    Ok(certificates)
}

/// rustls' `ring` provider.
#[expect(
    deprecated,
    reason = "ring, not aws-lc-rs, keeps the build free of a C toolchain and cmake; the cost \
              is no post-quantum key exchange, which is why rustls marks it deprecated"
)]
#[must_use]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The acceptor for `config`: TLS 1.2 and 1.3 with rustls' safe defaults, ALPN `h2` then
/// `http/1.1`.
pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(crypto_provider());
    let chain = certificates("--tls-cert", &config.cert_chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&config.key_pem).map_err(|error| TlsError::Pem {
        what: "--tls-key",
        reason: format!("no usable private key ({error})"),
    })?;
    let setup = |error: rustls::Error| TlsError::Setup(error.to_string());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(setup)?;
    let builder = match &config.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates("--client-ca", pem)? {
                roots.add(certificate).map_err(setup)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|error| TlsError::Setup(format!("--client-ca: {error}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(chain, key).map_err(setup)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
