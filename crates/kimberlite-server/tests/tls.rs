//! TLS end to end with certificates made in the test: round trips over HTTP/1.1 and HTTP/2,
//! a client that trusts another CA, mutual TLS mapping a certificate to a key, and plain HTTP
//! refused off loopback.

mod common;

use common::pki::{client, Ca};
use common::{test_keys, TestServer, ADMIN};
use kimberlite_server::{ConfigError, ServeError, ServerConfig, TlsConfig};

fn tls_config(ca: &Ca, client_ca: Option<&Ca>) -> ServerConfig {
    let leaf = ca.server();
    let mut tls = TlsConfig::from_pem(leaf.cert_pem.into_bytes(), leaf.key_pem.into_bytes());
    if let Some(client_ca) = client_ca {
        tls = tls.with_client_ca(client_ca.pem().into_bytes());
    }
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    config.tls = Some(tls);
    config
}

#[tokio::test]
async fn tls_round_trips_over_http1_and_http2() {
    let ca = Ca::new("test CA");
    let server = TestServer::start_custom(
        tls_config(&ca, None),
        test_keys(),
        client(&ca, None, &[b"h2", b"http/1.1"]),
    )
    .await;
    assert_eq!(server.scheme, "https");
    let created = server.create_stream("tls-1").await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.version(), reqwest::Version::HTTP_2, "ALPN chose h2");
    let appended = server
        .post(
            "/v1/streams/tls-1/events",
            ADMIN,
            &serde_json::json!(["a", "b"]),
        )
        .await;
    assert_eq!(appended.status(), 200, "{:?}", appended.text().await);
    let http1 = client(&ca, None, &[b"http/1.1"]);
    let read = http1
        .get(server.url("/v1/streams/tls-1/events?from=0"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("read");
    assert_eq!(read.version(), reqwest::Version::HTTP_11);
    let page: serde_json::Value = read.json().await.expect("json");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(2), "{page}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_trusting_another_ca_or_speaking_plain_http_gets_nothing() {
    let ca = Ca::new("test CA");
    let server =
        TestServer::start_custom(tls_config(&ca, None), test_keys(), client(&ca, None, &[])).await;
    let stranger = client(&Ca::new("another CA"), None, &[]);
    let error = stranger
        .get(server.url("/healthz"))
        .send()
        .await
        .expect_err("certificate not trusted");
    assert!(error.is_connect(), "{error:?}");
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    assert!(plain.is_err() || !plain.expect("answer").status().is_success());
    // The server still serves clients that trust it.
    let ok = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("health");
    assert_eq!(ok.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_verified_client_certificate_authenticates_as_the_key_of_its_common_name() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let config = tls_config(&ca, Some(&clients));
    let auditor = client(&ca, Some(&clients.client("auditor")), &[]);
    let server = TestServer::start_custom(config, test_keys(), auditor).await;
    assert_eq!(
        server.create_stream("m-1").await.status(),
        201,
        "tokens still work"
    );
    // The auditor key may read but not create.
    let listed = server
        .client
        .get(server.url("/v1/streams"))
        .send()
        .await
        .expect("list");
    assert_eq!(listed.status(), 200, "{:?}", listed.text().await);
    let create = server
        .client
        .post(server.url("/v1/streams"))
        .json(&serde_json::json!({"name": "m-2"}))
        .send()
        .await
        .expect("create");
    assert_eq!(create.status(), 403);
    // A certificate whose name is no key's: 401, saying so.
    let nobody = client(&ca, Some(&clients.client("nobody")), &[]);
    let refused = nobody
        .get(server.url("/v1/streams"))
        .send()
        .await
        .expect("list");
    assert_eq!(refused.status(), 401);
    let body = refused.text().await.expect("body");
    assert!(body.contains("CN=\\\"nobody\\\""), "{body}");
    // No certificate, no token: 401.
    let anonymous = client(&ca, None, &[]);
    let refused = anonymous
        .get(server.url("/v1/streams"))
        .send()
        .await
        .expect("list");
    assert_eq!(refused.status(), 401);
    // A client certificate from a CA the server does not trust: the handshake fails.
    let forged = client(&ca, Some(&Ca::new("rogue CA").client("admin")), &[]);
    let error = forged.get(server.url("/v1/streams")).send().await;
    assert!(error.is_err(), "{error:?}");
    server.stop().await;
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback_unless_insecure_plaintext() {
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:7070"] {
        let mut config = ServerConfig::new(listen.parse().expect("addr"));
        assert!(
            matches!(config.check(), Err(ConfigError::PlaintextNotLoopback(_))),
            "{listen}"
        );
        let message = config.check().expect_err("refused").to_string();
        assert!(message.contains("--insecure-plaintext"), "{message}");
        config.insecure_plaintext = true;
        assert!(config.check().is_ok(), "{listen}");
        config.insecure_plaintext = false;
        let ca = Ca::new("ca");
        let leaf = ca.server();
        config.tls = Some(TlsConfig::from_pem(
            leaf.cert_pem.into_bytes(),
            leaf.key_pem.into_bytes(),
        ));
        assert!(config.check().is_ok(), "{listen} with TLS");
    }
    for listen in ["127.0.0.1:0", "[::1]:0"] {
        assert!(ServerConfig::new(listen.parse().expect("addr"))
            .check()
            .is_ok());
    }
    // Server::bind runs the check before binding anything.
    let store = kimberlite::Kimberlite::in_memory();
    let state = kimberlite_server::AppState::new(store, test_keys(), Default::default());
    let refused = kimberlite_server::Server::bind(
        &ServerConfig::new("0.0.0.0:0".parse().expect("addr")),
        state,
    )
    .await;
    assert!(matches!(refused, Err(ServeError::Config(_))));
}

#[test]
fn bad_pem_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not pem").expect("write");
    let missing = dir.path().join("missing.pem");
    let error = TlsConfig::from_files(&missing, &garbage, None).expect_err("missing");
    assert!(error.to_string().contains("--tls-cert"), "{error}");
    let error = TlsConfig::from_files(&garbage, &garbage, None).expect_err("garbage");
    assert!(error.to_string().contains("--tls-cert"), "{error}");
    let ca = Ca::new("ca");
    let leaf = ca.server();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, &leaf.cert_pem).expect("write");
    let error = TlsConfig::from_files(&cert, &garbage, None).expect_err("no key");
    assert!(error.to_string().contains("--tls-key"), "{error}");
    // A key that is not the certificate's.
    let other = dir.path().join("other.pem");
    std::fs::write(&other, ca.server().key_pem).expect("write");
    assert!(TlsConfig::from_files(&cert, &other, None).is_err());
    let key = dir.path().join("key.pem");
    std::fs::write(&key, &leaf.key_pem).expect("write");
    assert!(TlsConfig::from_files(&cert, &key, None).is_ok());
    let error = TlsConfig::from_files(&cert, &key, Some(&garbage)).expect_err("bad ca");
    assert!(error.to_string().contains("--client-ca"), "{error}");
}
