//! `kimberlite key` and `kimberlite serve` with keys: tokens shown once and kept as hashes,
//! a key revoked by the CLI refused by the running server from its next request on, a
//! damaged key file refused with a clear error, plain HTTP refused off loopback.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{fails, free_addr, ok, run, s, serving, Serving};

fn add_key(dir: &Path, name: &str, allow: &[&str]) -> String {
    let mut args = vec!["key", "add", s(dir), "--name", name];
    for grant in allow {
        args.extend(["--allow", grant]);
    }
    let token = ok(&args, "").trim().to_owned();
    assert!(token.starts_with("kb_") && token.len() == 46, "{token}");
    token
}

#[test]
fn keys_are_added_listed_and_revoked_and_the_store_stays_intact() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("store");
    let token = add_key(&dir, "billing", &["append:billing-*", "read:billing-*"]);
    let file = std::fs::read_to_string(dir.join("server-keys.json")).expect("key file");
    assert!(!file.contains(&token[3..]), "the token is never stored");
    let listed = ok(&["key", "list", s(&dir)], "");
    assert!(
        listed.contains("billing") && listed.contains("append:billing-*"),
        "{listed}"
    );
    assert!(
        listed.contains("active") && !listed.contains(&token[3..]),
        "{listed}"
    );
    let id = listed.split_whitespace().next().expect("id").to_owned();
    assert!(id.starts_with("kid_"), "{listed}");
    // The key file beside the store's own files is no damage to it.
    ok(&["append", s(&dir), "audit", "--create"], "one\ntwo\n");
    ok(&["verify", s(&dir)], "");
    ok(&["key", "revoke", s(&dir), &id], "");
    let listed = ok(&["key", "list", s(&dir), "--json"], "");
    let value: serde_json::Value = serde_json::from_str(listed.trim()).expect("json");
    assert_eq!(value["revoked"], true, "{listed}");
    fails(
        &["key", "revoke", s(&dir), "kid_0000000000000000"],
        "",
        2,
        "no key has id",
    );
    fails(
        &["key", "add", s(&dir), "--name", "x", "--allow", "write:*"],
        "",
        2,
        "unknown permission",
    );
    fails(
        &["key", "add", s(&dir), "--name", "x", "--allow", "read"],
        "",
        2,
        "no stream pattern",
    );
    let other = temp.path().join("elsewhere.json");
    ok(
        &[
            "key",
            "add",
            s(&dir),
            "--keys",
            s(&other),
            "--name",
            "x",
            "--allow",
            "read:*",
        ],
        "",
    );
    assert!(other.is_file());
}

#[test]
fn a_damaged_key_file_is_a_clear_error_for_key_and_serve() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("store");
    add_key(&dir, "admin", &["admin:*"]);
    std::fs::write(
        dir.join("server-keys.json"),
        "{\"kimberlite_server_keys\": 1, \"keys\": [{}]}",
    )
    .expect("damage");
    fails(
        &["key", "list", s(&dir)],
        "",
        2,
        "damaged or not a key file",
    );
    fails(
        &["key", "add", s(&dir), "--name", "y", "--allow", "read:*"],
        "",
        2,
        "damaged",
    );
    fails(
        &["serve", s(&dir), "--listen", "127.0.0.1:0"],
        "",
        2,
        "damaged or not a key file",
    );
}

#[test]
fn serve_refuses_plain_http_off_loopback_and_bad_tls_files() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("store");
    fails(
        &["serve", s(&dir), "--listen", "0.0.0.0:0"],
        "",
        2,
        "--insecure-plaintext",
    );
    let garbage = temp.path().join("garbage.pem");
    std::fs::write(&garbage, "garbage").expect("write");
    let run = run(
        &[
            "serve",
            s(&dir),
            "--tls-cert",
            s(&garbage),
            "--tls-key",
            s(&garbage),
        ],
        "",
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--tls-cert"), "{}", run.stderr);
    fails(
        &["serve", s(&dir), "--tls-cert", s(&garbage)],
        "",
        2,
        "--tls-key",
    );
}

/// The status of `GET path` with `token`, on a fresh connection.
fn status(addr: SocketAddr, path: &str, token: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn serve(dir: &Path, addr: SocketAddr) -> Serving {
    let listen = addr.to_string();
    let args = ["serve", s(dir), "--listen", &listen];
    serving(&args, addr, Stdio::piped(), Duration::from_secs(20))
}

#[cfg(unix)] // `kill -TERM`
#[test]
fn a_key_revoked_by_the_cli_is_refused_by_the_running_server_from_the_next_request() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("store");
    let admin = add_key(&dir, "admin", &["admin:*"]);
    let addr = free_addr();
    let mut server = serve(&dir, addr);
    assert_eq!(status(addr, "/v1/streams", &admin), 200);
    assert_eq!(status(addr, "/v1/streams", "kb_not-a-key"), 401);
    let reader = add_key(&dir, "reader", &["read:*"]);
    assert_eq!(
        status(addr, "/v1/streams", &reader),
        200,
        "added while running"
    );
    assert_eq!(status(addr, "/v1/keys", &reader), 403);
    let listed = ok(&["key", "list", s(&dir)], "");
    let id = listed
        .lines()
        .find(|line| line.contains("\"reader\""))
        .and_then(|line| line.split_whitespace().next())
        .expect("reader's id")
        .to_owned();
    ok(&["key", "revoke", s(&dir), &id], "");
    assert_eq!(
        status(addr, "/v1/streams", &reader),
        401,
        "revoked: refused at once"
    );
    assert_eq!(status(addr, "/v1/streams", &admin), 200);
    // SIGTERM: stops accepting, syncs, exits 0.
    let pid = server.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = server.0.wait().expect("wait");
    assert!(exit.success(), "{exit:?}");
}
