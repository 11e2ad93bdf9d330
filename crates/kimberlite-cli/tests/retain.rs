//! `kimberlite retain` through the real binary: a cut covered by a checkpoint, reads below it
//! refused as pruned, `verify` intact, `prove` of a kept event; times, cuts past the last
//! checkpoint and unknown streams refused with nothing written.

use std::path::Path;
use std::process::Command;

use kimberlite::{Config, ExpectedOffset, Kimberlite};

fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(args)
        .output()
        .expect("run kimberlite");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains("panicked"), "panic: {all}");
    (output.status.code().expect("exit code"), all)
}

fn expect(args: &[&str], code: i32, needle: &str) -> String {
    let (got, all) = run(args);
    assert_eq!(got, code, "{args:?}\n{all}");
    assert!(all.contains(needle), "{args:?}: {needle:?} not in\n{all}");
    all
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn retain_cuts_below_a_checkpoint_and_the_rest_still_verifies_and_proves() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    {
        let db = Kimberlite::open_with(&store, Config::default().max_segment_size(2048)).unwrap();
        let id = db.create_stream("audit").unwrap();
        for batch in 0..30 {
            let events: Vec<String> = (batch * 10..batch * 10 + 10)
                .map(|i| format!("{{\"event\":\"visit\",\"n\":{i}}}"))
                .collect();
            db.append(id, events, ExpectedOffset::Any).unwrap();
        }
    }
    let (dir, key) = (s(&store), tmp.path().join("log.key"));
    expect(&["keygen", "--name", "log", "--out", s(&key)], 0, "log+");
    // No checkpoint yet: refused, with how to make one.
    expect(
        &["retain", dir, "audit", "--before", "100"],
        2,
        "no signed checkpoint is kept",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(["checkpoint", dir, "audit", "--key", s(&key)])
        .output()
        .unwrap();
    assert!(output.status.success());
    let checkpoint = tmp.path().join("audit.checkpoint");
    std::fs::write(&checkpoint, &output.stdout).unwrap();
    expect(
        &["retain", dir, "audit", "--before", "2026-01-01T00:00:00Z"],
        2,
        "retention by time is not supported",
    );
    expect(
        &["retain", dir, "audit", "--before", "301"],
        2,
        "past the stream's head",
    );
    expect(
        &["retain", dir, "nope", "--before", "1"],
        2,
        "no stream named",
    );
    assert!(!store
        .join("streams/00000000000000000001/pruned.json")
        .exists());

    let out = expect(
        &["retain", dir, "audit", "--before", "150"],
        0,
        "the stream holds events from offset",
    );
    let first: u64 = out
        .split("holds events from offset ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(first > 0 && first <= 150, "{out}");
    let below = (first - 1).to_string();
    expect(
        &["read", dir, "audit", "--from", &below, "--limit", "1"],
        2,
        &format!("pruned before offset {first}"),
    );
    let from = first.to_string();
    expect(
        &["read", dir, "audit", "--from", &from, "--limit", "1"],
        0,
        &format!("\"n\":{first}"),
    );
    let verified = expect(&["verify", dir], 0, "intact:");
    assert!(
        verified.contains(&format!("pruned before offset {first}")),
        "{verified}"
    );
    // Without --from, read starts at the first kept event.
    expect(
        &["read", dir, "audit", "--limit", "1"],
        0,
        &format!("\"n\":{first}}}"),
    );
    // A kept event's proof still verifies against the checkpoint signed before the cut.
    let (code, proof) = run(&["prove", dir, "audit", &from]);
    assert_eq!(code, 0, "{proof}");
    let proof_file = tmp.path().join("proof.json");
    std::fs::write(&proof_file, proof).unwrap();
    let pubkey = tmp.path().join("log.key.pub");
    expect(
        &[
            "verify-proof",
            "--pubkey",
            s(&pubkey),
            "--checkpoint",
            s(&checkpoint),
            "--proof",
            s(&proof_file),
        ],
        0,
        "",
    );
    // Again at the same point: nothing more to drop.
    expect(
        &["retain", dir, "audit", "--before", &from],
        0,
        "nothing dropped",
    );
}
