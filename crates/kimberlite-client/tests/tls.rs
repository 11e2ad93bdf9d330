//! TLS end to end: certificates made here (rcgen), a rustls front on loopback passing the
//! decrypted bytes to a real server; the client trusts a given CA, refuses an unknown one,
//! and presents a client certificate when the front asks for one.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{TestServer, ADMIN};
use kimberlite_client::{Client, ClientError};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Pki {
    ca: Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "kimberlite test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        Self { ca, ca_key }
    }

    /// A certificate for `names` with `usage`, signed by this CA, and its key.
    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(
            names
                .iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert, key)
    }
}

/// A TLS front on 127.0.0.1 for `server`, with a certificate of `pki`; with `client_ca`, it
/// requires a client certificate signed by that CA. Returns its address.
#[expect(
    deprecated,
    reason = "ring is the provider the client uses (reqwest's rustls with ring); rustls marks \
              it deprecated only for lacking post-quantum key exchange"
)]
fn tls_front(server: &TestServer, pki: &Pki, client_ca: Option<&Certificate>) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (cert, key) = pki.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    }
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let upstream = server.addr;
    let handle = server.handle();
    let listener = handle
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    handle.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    addr
}

#[test]
fn a_given_ca_is_trusted_and_an_unknown_one_refused() {
    let server = TestServer::start();
    let pki = Pki::new();
    let front = tls_front(&server, &pki, None);
    let url = format!("https://{front}");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, pki.ca.pem()).unwrap();
    let client = Client::builder(&url)
        .token(ADMIN)
        .ca_cert_file(&ca_file)
        .unwrap()
        .only_given_cas()
        .build()
        .unwrap();
    client.create_stream("over-tls").unwrap();
    client.append("over-tls", &["a", "b"], Some(0)).unwrap();
    let page = client.read("over-tls", 0, None).unwrap();
    assert_eq!(page.events.len(), 2);

    // The system's roots do not know the test CA; another CA is not it either.
    let other = Pki::new();
    for builder in [
        Client::builder(&url).token(ADMIN),
        Client::builder(&url)
            .token(ADMIN)
            .ca_cert_pem(other.ca.pem().as_bytes())
            .only_given_cas(),
    ] {
        let refused = builder.build().unwrap().healthz().unwrap_err();
        assert!(matches!(refused, ClientError::Transport(_)), "{refused}");
        assert!(refused.to_string().contains("certificate"), "{refused}");
    }
    // Plain HTTP to the TLS port gets no answer either.
    let plain = Client::builder(&format!("http://{front}")).build().unwrap();
    assert!(plain.healthz().is_err());
}

#[test]
fn a_client_certificate_is_presented_when_asked() {
    let server = TestServer::start();
    let pki = Pki::new();
    let clients = Pki::new();
    let front = tls_front(&server, &pki, Some(&clients.ca));
    let url = format!("https://{front}");
    let without = Client::builder(&url)
        .ca_cert_pem(pki.ca.pem().as_bytes())
        .build()
        .unwrap();
    assert!(matches!(without.healthz(), Err(ClientError::Transport(_))));
    let (cert, key) = clients.issue(&["ehr-service"], ExtendedKeyUsagePurpose::ClientAuth);
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("client.pem"), dir.path().join("client.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let with = Client::builder(&url)
        .token(ADMIN)
        .ca_cert_pem(pki.ca.pem().as_bytes())
        .identity_files(&cert_path, &key_path)
        .unwrap()
        .build()
        .unwrap();
    with.healthz().unwrap();
    with.create_stream("mutual").unwrap();
    // A certificate from a CA the front does not accept is refused.
    let (stranger, stranger_key) = pki.issue(&["stranger"], ExtendedKeyUsagePurpose::ClientAuth);
    let identity = format!("{}\n{}", stranger.pem(), stranger_key.serialize_pem());
    let refused = Client::builder(&url)
        .ca_cert_pem(pki.ca.pem().as_bytes())
        .identity_pem(identity.as_bytes())
        .build()
        .unwrap()
        .healthz();
    assert!(
        matches!(refused, Err(ClientError::Transport(_))),
        "{refused:?}"
    );
}
