//! `--server`: append and read against a live `kimberlite serve` on loopback, through the
//! real binary; the same output as against a directory, typed server errors as exit codes
//! and hints, and the argument shapes (`DIR` left out with `--server`).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{fails, ok, s};
use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_server::{AppState, KeyRing, Limits, Permission, Principal, Server};

const ADMIN: &str = "cli-remote-admin";
const AUDITOR: &str = "cli-remote-auditor";

/// A server on 127.0.0.1 over a fresh store, on its own runtime, with an admin (append and
/// admin everywhere) and an auditor (read everywhere) key whose tokens are in files.
struct Live {
    url: String,
    admin: PathBuf,
    auditor: PathBuf,
    dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn principal(id: &str, grants: &[Permission]) -> Principal {
    let grants: Vec<_> = grants.iter().map(|&permission| (permission, "*")).collect();
    Principal::new(id, &grants)
}

impl Live {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Kimberlite::open_with(
            dir.path().join("store"),
            Config::default().durability(Durability::GroupCommit),
        )
        .unwrap();
        let keys = KeyRing::from_tokens(vec![
            (
                ADMIN.into(),
                principal("admin", &[Permission::Admin, Permission::Append]),
            ),
            (AUDITOR.into(), principal("auditor", &[Permission::Read])),
        ]);
        let admin = dir.path().join("admin.token");
        let auditor = dir.path().join("auditor.token");
        std::fs::write(&admin, format!("{ADMIN}\n")).unwrap();
        std::fs::write(&auditor, format!("{AUDITOR}\n")).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let state = AppState::new(store, keys, Limits::default());
        let config = kimberlite_server::ServerConfig::new("127.0.0.1:0".parse().unwrap());
        let server = runtime.block_on(Server::bind(&config, state)).unwrap();
        let url = format!("http://{}", server.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            url,
            admin,
            auditor,
            dir,
            runtime: Some(runtime),
            stop: Some(stop),
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// A TLS front on 127.0.0.1 for `live` with a certificate for 127.0.0.1 from a CA made
/// here; returns its address and the CA's PEM.
#[expect(
    deprecated,
    reason = "ring is the provider the client uses (reqwest's rustls with ring); rustls marks \
              it deprecated only for lacking post-quantum key exchange"
)]
fn tls_front(live: &Live) -> (std::net::SocketAddr, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let upstream: std::net::SocketAddr = live.url.trim_start_matches("http://").parse().unwrap();
    let runtime = live.runtime.as_ref().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    if let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    }
                }
            });
        }
    });
    (addr, ca.pem())
}

#[test]
fn ca_cert_lets_the_commands_trust_a_servers_own_ca() {
    let live = Live::start();
    let (front, ca) = tls_front(&live);
    let url = format!("https://{front}");
    let ca_file = live.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let admin = s(&live.admin);
    ok(
        &[
            "append",
            "--server",
            &url,
            "--token-file",
            admin,
            "--ca-cert",
            s(&ca_file),
            "tls",
            "--create",
        ],
        "over TLS\n",
    );
    let text = ok(
        &[
            "read",
            "--server",
            &url,
            "--token-file",
            admin,
            "--ca-cert",
            s(&ca_file),
            "tls",
        ],
        "",
    );
    assert_eq!(text, "over TLS\n");
    // Without the CA, the server's certificate is unknown: exit 2 saying so.
    fails(
        &["read", "--server", &url, "--token-file", admin, "tls"],
        "",
        2,
        "certificate",
    );
}

#[test]
fn append_and_read_through_a_server() {
    let live = Live::start();
    let (url, admin, auditor) = (live.url.as_str(), s(&live.admin), s(&live.auditor));
    let appended = ok(
        &[
            "append",
            "--server",
            url,
            "--token-file",
            admin,
            "ehr",
            "--create",
            "--expect",
            "0",
        ],
        "viewed P-1\n\n{\"actor\":\"dr.moreau\"}\r\ncaf\u{e9}\n",
    );
    assert!(
        appended.starts_with("appended 3 events to \"ehr\" at offsets 0..2; next offset 3, head "),
        "{appended}"
    );
    let more = ok(
        &[
            "append",
            "--server",
            url,
            "--token-file",
            admin,
            "ehr",
            "--expect",
            "3",
        ],
        "fourth\n",
    );
    assert!(more.contains("at offsets 3..3; next offset 4"), "{more}");

    let text = ok(
        &["read", "--server", url, "--token-file", auditor, "ehr"],
        "",
    );
    assert_eq!(
        text,
        "viewed P-1\n{\"actor\":\"dr.moreau\"}\ncaf\u{e9}\nfourth\n"
    );
    let json = ok(
        &[
            "read",
            "--server",
            url,
            "--token-file",
            auditor,
            "ehr",
            "--from",
            "1",
            "--limit",
            "2",
            "--json",
        ],
        "",
    );
    assert_eq!(
        json,
        "{\"offset\":1,\"payload\":\"{\\\"actor\\\":\\\"dr.moreau\\\"}\"}\n\
         {\"offset\":2,\"payload\":\"caf\u{e9}\"}\n"
    );
}

#[test]
fn a_conflict_exits_2_naming_the_next_offset_and_writes_nothing() {
    let live = Live::start();
    let (url, admin) = (live.url.as_str(), s(&live.admin));
    ok(
        &[
            "append",
            "--server",
            url,
            "--token-file",
            admin,
            "s",
            "--create",
        ],
        "a\nb\n",
    );
    let conflict = fails(
        &[
            "append",
            "--server",
            url,
            "--token-file",
            admin,
            "s",
            "--expect",
            "1",
        ],
        "late\n",
        2,
        "conflict",
    );
    assert!(
        conflict.stderr.contains("next offset is 2"),
        "{}",
        conflict.stderr
    );
    let text = ok(&["read", "--server", url, "--token-file", admin, "s"], "");
    assert_eq!(text, "a\nb\n");
}

#[test]
fn refused_keys_and_unknown_streams_exit_2_with_the_servers_reason() {
    let live = Live::start();
    let (url, admin, auditor) = (live.url.as_str(), s(&live.admin), s(&live.auditor));
    ok(
        &[
            "append",
            "--server",
            url,
            "--token-file",
            admin,
            "s",
            "--create",
        ],
        "a\n",
    );
    let no_key = fails(&["read", "--server", url, "s"], "", 2, "unauthorized");
    assert!(no_key.stderr.contains("--token-file"), "{}", no_key.stderr);
    fails(
        &["append", "--server", url, "--token-file", auditor, "s"],
        "x\n",
        2,
        "forbidden",
    );
    fails(
        &["read", "--server", url, "--token-file", auditor, "missing"],
        "",
        2,
        "not_found",
    );
    fails(
        &["append", "--server", url, "--token-file", admin, "missing"],
        "x\n",
        2,
        "not_found",
    );
    let text = ok(&["read", "--server", url, "--token-file", admin, "s"], "");
    assert_eq!(text, "a\n", "nothing refused was written");
}

#[test]
fn argument_shapes_with_and_without_a_server() {
    let live = Live::start();
    let (url, admin) = (live.url.as_str(), s(&live.admin));
    // DIR given beside --server is one argument too many.
    fails(
        &["read", "--server", url, "--token-file", admin, "dir", "s"],
        "",
        2,
        "leave DIR out",
    );
    // Server options need --server.
    fails(
        &["read", "dir", "s", "--token-file", admin],
        "",
        2,
        "--server",
    );
    // Without --server, STREAM is still required after DIR.
    fails(&["read", "dir"], "", 2, "STREAM is missing");
    // Options only a directory has are refused with --server.
    fails(
        &["checkpoint", "--server", url, "s", "--key", "k"],
        "",
        2,
        "cannot be used with",
    );
    fails(
        &["verify", "--server", url, "--token-file", admin],
        "",
        2,
        "--server URL [--token-file FILE] STREAM",
    );
    fails(
        &["read", "--server", "ftp://x", "s"],
        "",
        2,
        "not http:// or https://",
    );
    let missing_token = tempfile::tempdir().unwrap();
    let path = missing_token.path().join("none");
    fails(
        &["read", "--server", url, "--token-file", s(&path), "s"],
        "",
        2,
        "cannot read the token file",
    );
}
