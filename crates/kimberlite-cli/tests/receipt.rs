//! Receipts through the real binary: `prove --receipt` from a store directory and from a
//! server, `verify-proof FILE` saying what it checked (log signature, inclusion, k of n
//! cosignatures), and refusing another event, another key, a missing quorum.

mod common;
mod support;

use common::{fails, ok, run, s, store_with};
use kimberlite::proof::{add_cosignatures, split_note, stream_origin, SignerKey, WitnessSigner};
use kimberlite::{Config, Kimberlite};
use support::Served;

fn payload(seq: usize) -> String {
    format!("{{\"event\":\"record.viewed\",\"seq\":{seq:05}}}")
}

#[test]
fn a_local_receipt_verifies_and_says_what_was_checked() {
    let (tmp, dir) = store_with(5);
    let key = tmp.path().join("log.key");
    ok(&["keygen", "--name", "log", "--out", s(&key)], "");
    let pubkey = tmp.path().join("log.key.pub");
    // No cosigned checkpoint and no key: nothing covers the event.
    fails(
        &["prove", "--receipt", s(&dir), "audit", "2"],
        "",
        2,
        "--key FILE",
    );
    let out = run(
        &[
            "prove",
            "--receipt",
            "--key",
            s(&key),
            s(&dir),
            "audit",
            "2",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("unwitnessed"), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("c2sp.org/tlog-proof@v1\n"),
        "{}",
        out.stdout
    );
    let receipt = tmp.path().join("event-2.tlog-proof");
    std::fs::write(&receipt, &out.stdout).unwrap();
    let event = tmp.path().join("event-2");
    std::fs::write(&event, payload(2)).unwrap();

    let plain = ok(&["verify-proof", s(&receipt), "--log-key", s(&pubkey)], "");
    assert!(
        plain.starts_with("valid: the event at offset 2 is in store/audit"),
        "{plain}"
    );
    assert!(plain.contains("log signature: ok, by log"), "{plain}");
    assert!(plain.contains("inclusion: ok"), "{plain}");
    assert!(plain.contains("pass --event FILE"), "{plain}");
    assert!(plain.contains("witnesses: not checked"), "{plain}");
    // The key's text does as well as its file; the event is recomputed when given.
    let key_text = std::fs::read_to_string(&pubkey).unwrap();
    let with_event = ok(
        &[
            "verify-proof",
            s(&receipt),
            "--log-key",
            key_text.trim(),
            "--event",
            s(&event),
        ],
        "",
    );
    assert!(
        with_event.contains("recomputed from the event given"),
        "{with_event}"
    );
    // Another event, another log key: invalid, exit 1, naming what failed.
    let other_event = tmp.path().join("event-3");
    std::fs::write(&other_event, payload(3)).unwrap();
    fails(
        &[
            "verify-proof",
            s(&receipt),
            "--log-key",
            s(&pubkey),
            "--event",
            s(&other_event),
        ],
        "",
        1,
        "another event",
    );
    let other = tmp.path().join("other.key");
    ok(&["keygen", "--name", "log", "--out", s(&other)], "");
    let other_pub = tmp.path().join("other.key.pub");
    fails(
        &["verify-proof", s(&receipt), "--log-key", s(&other_pub)],
        "",
        1,
        "INVALID: log signature",
    );

    // A witness cosigns the checkpoint (as the server's witness client would keep it).
    let witness = WitnessSigner::from_seed("w1.example", [4; 32]).unwrap();
    let policy = tmp.path().join("policy");
    std::fs::write(
        &policy,
        format!("witness {}\nquorum 1\n", witness.verifier().to_text()),
    )
    .unwrap();
    fails(
        &[
            "verify-proof",
            s(&receipt),
            "--log-key",
            s(&pubkey),
            "--witness-policy",
            s(&policy),
        ],
        "",
        1,
        "INVALID: witnesses: the checkpoint has 0 valid cosignature(s) of the 1",
    );
    {
        let store = Kimberlite::open_with(&dir, Config::default()).unwrap();
        let id = store.stream("audit").unwrap();
        let signer = SignerKey::parse(&std::fs::read_to_string(&key).unwrap()).unwrap();
        let note = store
            .sign_checkpoint(id, &stream_origin("store", "audit").unwrap(), &signer)
            .unwrap()
            .note;
        let line = witness
            .cosign(split_note(&note).unwrap().0, 1_700_000_000)
            .unwrap();
        store
            .keep_cosigned_checkpoint(id, &add_cosignatures(&note, &line).unwrap())
            .unwrap();
    }
    let out = run(&["prove", "--receipt", s(&dir), "audit", "2"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.starts_with("witnessed"), "{}", out.stderr);
    std::fs::write(&receipt, &out.stdout).unwrap();
    let witnessed = ok(
        &[
            "verify-proof",
            s(&receipt),
            "--log-key",
            s(&pubkey),
            "--witness-policy",
            s(&policy),
        ],
        "",
    );
    assert!(
        witnessed.contains(
            "witnesses: ok, 1 of 1 valid cosignatures (quorum 1): w1.example at 1700000000"
        ),
        "{witnessed}"
    );
    // Mixed-up options are usage errors (exit 2).
    fails(
        &[
            "verify-proof",
            s(&receipt),
            "--log-key",
            s(&pubkey),
            "--checkpoint",
            s(&receipt),
        ],
        "",
        2,
        "carries its own checkpoint",
    );
    fails(
        &["verify-proof", s(&receipt), "--log-key", "nonsense"],
        "",
        2,
        "--log-key",
    );
    fails(
        &["prove", "--receipt", "--size", "3", s(&dir), "audit", "2"],
        "",
        2,
        "--size",
    );
}

#[test]
fn a_served_receipt_verifies_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("log", [21; 32]).unwrap();
    let dir = tmp.path().join("store");
    let served = Served::start(&dir, "ehr", &key, tmp.path());
    {
        let store = served.state.store();
        let id = store.create_stream("audit").unwrap();
        store
            .append(id, ["a", "b", "c"], kimberlite::ExpectedOffset::NoStream)
            .unwrap();
    }
    let (url, token) = (served.url.clone(), served.token_file.clone());
    let out = run(
        &[
            "prove",
            "--receipt",
            "--server",
            &url,
            "--token-file",
            s(&token),
            "audit",
            "1",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("unwitnessed"), "{}", out.stderr);
    let receipt = tmp.path().join("b.tlog-proof");
    std::fs::write(&receipt, &out.stdout).unwrap();
    let event = tmp.path().join("b");
    std::fs::write(&event, "b").unwrap();
    let pubkey = key.verifier().to_text();
    let valid = ok(
        &[
            "verify-proof",
            s(&receipt),
            "--log-key",
            &pubkey,
            "--event",
            s(&event),
        ],
        "",
    );
    assert!(
        valid.starts_with("valid: the event at offset 1 is in ehr/audit"),
        "{valid}"
    );
    // Past the durable end: the server's 404, exit 2.
    fails(
        &[
            "prove",
            "--receipt",
            "--server",
            &url,
            "--token-file",
            s(&token),
            "audit",
            "9",
        ],
        "",
        2,
        "durable end",
    );
    served.stop();
}
