//! A proof and a checkpoint fetched from the server over loopback, checked by the real
//! `kimberlite verify-proof` and `kimberlite audit` binaries with the `keygen` public key: the
//! server's answers are the files the CLI writes.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{ok, s, verify_proof};
use kimberlite::proof::SignerKey;
use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite};
use kimberlite_server::{AppState, KeyRing, Limits, Permission, Principal, Server, ServerConfig};

const AUDITOR: &str = "auditor-token";

/// The body of `GET path` with the auditor's key (HTTP/1.1, one request per connection).
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {AUDITOR}\r\n\
         Connection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}\n{body}");
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    body.to_owned()
}

#[test]
fn verify_proof_and_audit_accept_what_the_server_serves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key_path = tmp.path().join("server.key");
    ok(&["keygen", "--name", "server", "--out", s(&key_path)], "");
    let key = SignerKey::parse(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    let dir = tmp.path().join("store");
    let store = Kimberlite::open_with(&dir, Config::default().durability(Durability::GroupCommit))
        .expect("open");
    let id = store.create_stream("audit").expect("create");
    let events: Vec<String> = (0..10).map(|i| format!("event {i}")).collect();
    store
        .append(id, events, ExpectedOffset::NoStream)
        .expect("append");

    let auditor = Principal::new("auditor", &[(Permission::Read, "*")]);
    let keys = KeyRing::from_tokens(vec![(AUDITOR.into(), auditor)]);
    // The default store name is the directory's, as the CLI's: no --store-name on either side.
    let state = AppState::new(store, keys, Limits::default()).with_signing_key(key);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    let server = runtime
        .block_on(Server::bind(&config, state.clone()))
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(server.run(async move {
        let _ = stopped.await;
        state.close_followers();
    }));

    let checkpoint = tmp.path().join("cp.txt");
    std::fs::write(&checkpoint, get(addr, "/v1/streams/audit/checkpoint")).unwrap();
    let inclusion = tmp.path().join("event-4.json");
    std::fs::write(
        &inclusion,
        get(addr, "/v1/streams/audit/proofs/inclusion?offset=4"),
    )
    .unwrap();
    let consistency = tmp.path().join("grew.json");
    std::fs::write(
        &consistency,
        get(addr, "/v1/streams/audit/proofs/consistency?old=3&new=10"),
    )
    .unwrap();
    stop.send(()).expect("stop");
    runtime.block_on(serving).expect("join").expect("serve");
    drop(runtime);

    let pubkey = tmp.path().join("server.key.pub");
    for proof in [&inclusion, &consistency] {
        let out = verify_proof(&pubkey, &checkpoint, proof);
        assert!(out.starts_with("valid: "), "{out}");
    }
    let out = ok(
        &[
            "audit",
            s(&dir),
            "--checkpoint",
            s(&checkpoint),
            "--pubkey",
            s(&pubkey),
        ],
        "",
    );
    assert!(out.contains("consistent"), "{out}");
    // The server kept the checkpoint where `kimberlite checkpoint` keeps them.
    let kept = dir.join("checkpoints/00000000000000000001/00000000000000000010.checkpoint");
    assert_eq!(
        std::fs::read_to_string(kept).unwrap(),
        std::fs::read_to_string(&checkpoint).unwrap()
    );
}
