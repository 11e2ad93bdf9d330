//! `kimberlite witness` end to end on loopback: a witness process, a store's checkpoints
//! made with `kimberlite checkpoint` sent with `prove-consistency`'s proof, the
//! cosignatures verified; a stale request gets 409 with the witness's size; `list` shows it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, s, store_with};
use kimberlite::proof::{
    add_cosignatures, parse_size_body, AddCheckpoint, ConsistencyBundle, WitnessKey,
};

/// POSTs `body` to `addr`'s /add-checkpoint; returns status and body.
fn post(addr: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /add-checkpoint HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// `kimberlite witness serve DIR --key KEY` on a port of 127.0.0.1: the process and its
/// address, read from the line it prints.
fn spawn_witness(dir: &Path, key: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(["witness", "serve", s(dir), "--key", s(key)])
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, addr)
}

/// `kimberlite witness keygen --name witness.example/w1 --out KEY`: what it prints, the
/// witness's verifier key.
fn witness_keygen(key: &Path) -> String {
    let args = [
        "witness",
        "keygen",
        "--name",
        "witness.example/w1",
        "--out",
        s(key),
    ];
    ok(&args, "")
}

#[test]
fn a_witness_process_cosigns_a_stores_checkpoints() {
    let (temp, store) = store_with(3);
    let log_key = temp.path().join("log.key");
    ok(
        &["keygen", "--name", "example.org/log", "--out", s(&log_key)],
        "",
    );
    let witness_key = temp.path().join("witness.key");
    let vkey = witness_keygen(&witness_key);
    let witness_vkey = WitnessKey::parse(vkey.trim()).unwrap();
    let witness_dir = temp.path().join("witness");
    let log_pub = format!("{}.pub", s(&log_key));
    ok(
        &[
            "witness",
            "add-log",
            s(&witness_dir),
            "--origin",
            "store/audit",
            "--key",
            &log_pub,
        ],
        "",
    );
    let listed = ok(&["witness", "list", s(&witness_dir)], "");
    assert!(
        listed.contains("store/audit") && listed.contains("nothing cosigned yet"),
        "{listed}"
    );

    let (mut child, addr) = spawn_witness(&witness_dir, &witness_key);

    let outcome = std::panic::catch_unwind(|| {
        // The first checkpoint, from size 0.
        let note = ok(
            &["checkpoint", s(&store), "audit", "--key", s(&log_key)],
            "",
        );
        let request = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: note.clone(),
        };
        let (status, lines) = post(&addr, &request.to_body());
        assert_eq!(status, 200, "{lines}");
        let cosigned = add_cosignatures(&note, &lines).unwrap();
        witness_vkey.verify(&cosigned).unwrap();

        // Two more events, the next checkpoint with the proof from 3.
        ok(&["append", s(&store), "audit"], "d\ne\n");
        let note = ok(
            &["checkpoint", s(&store), "audit", "--key", s(&log_key)],
            "",
        );
        let bundle = ok(&["prove-consistency", s(&store), "audit", "3", "5"], "");
        let bundle: ConsistencyBundle = serde_json::from_str(&bundle).unwrap();
        let request = AddCheckpoint {
            old_size: 3,
            proof: bundle.proof,
            checkpoint: note.clone(),
        };
        let (status, lines) = post(&addr, &request.to_body());
        assert_eq!(status, 200, "{lines}");
        witness_vkey
            .verify(&add_cosignatures(&note, &lines).unwrap())
            .unwrap();

        // A stale request: 409 with the witness's size.
        let stale = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: note,
        };
        let (status, body) = post(&addr, &stale.to_body());
        assert_eq!((status, parse_size_body(&body).unwrap()), (409, 5));
        assert_eq!(post(&addr, "garbage").0, 400);
        // `list` reads the store beside the running witness.
        let listed = ok(&["witness", "list", s(&witness_dir)], "");
        assert!(listed.contains("size 5"), "{listed}");
    });
    child.kill().unwrap();
    child.wait().unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    let listed = ok(&["witness", "list", s(&witness_dir)], "");
    assert!(listed.contains("size 5"), "{listed}");
}

#[test]
fn serve_refuses_a_witness_policy_it_cannot_use_before_listening() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let log_key = temp.path().join("log.key");
    ok(&["keygen", "--name", "ehr", "--out", s(&log_key)], "");
    let witness_key = temp.path().join("w1.key");
    let vkey = witness_keygen(&witness_key);
    let policy = temp.path().join("policy.txt");
    let serve = |rule: &str| {
        vec![
            "serve".to_owned(),
            s(&dir).to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--signing-key".to_owned(),
            s(&log_key).to_owned(),
            "--witness-policy".to_owned(),
            rule.to_owned(),
        ]
    };
    let refused = |args: Vec<String>, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::fails(&args, "", 2, needle);
    };
    // Without a signing key there is nothing to witness.
    let mut unsigned = serve(s(&policy));
    unsigned.drain(4..6);
    refused(unsigned, "--signing-key");
    refused(serve(s(&policy)), "policy.txt");
    // A witness the server could not ask (no URL), a malformed line: named.
    std::fs::write(&policy, format!("witness {}\nquorum 1\n", vkey.trim())).unwrap();
    refused(serve(&format!("ehr-*={}", s(&policy))), "has no URL");
    std::fs::write(&policy, "quorum 1\nwitness\n").unwrap();
    refused(serve(s(&policy)), "line 2");
}

#[test]
fn a_server_with_a_witness_policy_has_its_checkpoints_witnessed_unasked() {
    let (temp, store) = store_with(3);
    let log_key = temp.path().join("log.key");
    ok(&["keygen", "--name", "store", "--out", s(&log_key)], "");
    let witness_key = temp.path().join("w1.key");
    let vkey = witness_keygen(&witness_key);
    let witness_dir = temp.path().join("witness");
    let log_pub = format!("{}.pub", s(&log_key));
    let add_log = [
        "witness",
        "add-log",
        s(&witness_dir),
        "--origin",
        "store/audit",
    ];
    ok(&[&add_log[..], &["--key", &log_pub]].concat(), "");
    let (mut witness, addr) = spawn_witness(&witness_dir, &witness_key);
    let policy = temp.path().join("policy.txt");
    std::fs::write(
        &policy,
        format!("witness {} http://{addr}\nquorum 1\n", vkey.trim()),
    )
    .unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(["serve", s(&store), "--listen", "127.0.0.1:0"])
        .args(["--signing-key", s(&log_key), "--witness-policy"])
        .arg(format!("audit={}", s(&policy)))
        .args(["--checkpoint-interval-ms", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Nobody asks for a checkpoint: the server's checkpointer signs one and the witness
    // cosigns it.
    let checkpoints = store.join("checkpoints/00000000000000000001");
    let cosigned = checkpoints.join("00000000000000000003.cosigned");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) && !cosigned.exists() {
        std::thread::sleep(Duration::from_millis(100));
    }
    for child in [&mut server, &mut witness] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let kept: Vec<_> = std::fs::read_dir(&checkpoints)
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    let note = std::fs::read_to_string(&cosigned)
        .unwrap_or_else(|error| panic!("{error}; kept: {kept:?}"));
    WitnessKey::parse(vkey.trim())
        .unwrap()
        .verify(&note)
        .unwrap();
    let listed = ok(&["witness", "list", s(&witness_dir)], "");
    assert!(listed.contains("size 3"), "{listed}");
}
