//! Tampering and recovery through the real `kimberlite` binary: events cut from the end and
//! caught by anchors, a cut catalogue, a failed create that must leave no trace, a torn tail
//! cut and kept, concurrent creators of one store, a stream open cannot read.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{fails, ok, run, s, segments, store_with};

fn anchor_of(dir: &Path, stream: &str) -> String {
    let json = ok(&["verify", s(dir), "--json"], "");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let streams = value["streams"].as_array().unwrap();
    let found = streams.iter().find(|s| s["name"] == stream).unwrap();
    found["anchor"].as_str().unwrap().to_owned()
}

fn cut_bytes(file: &Path, bytes: u64) {
    let handle = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    let len = handle.metadata().unwrap().len();
    handle.set_len(len - bytes).unwrap();
}

fn stream_segment(dir: &Path, id: u64) -> PathBuf {
    let mut files = Vec::new();
    segments(dir, &mut files);
    let needle = format!("{id:020}");
    files
        .into_iter()
        .find(|f| f.to_string_lossy().contains(&needle))
        .unwrap()
}

#[test]
fn anchors_catch_events_cut_from_the_end() {
    let (_temp, dir) = store_with(10);
    let anchor = anchor_of(&dir, "audit");
    assert!(anchor.starts_with("audit@10="), "{anchor}");
    ok(&["append", s(&dir), "audit"], "later\n");
    ok(&["verify", s(&dir), "--anchor", &anchor], "");
    fails(
        &["verify", s(&dir), "--anchor", "audit@10=zz"],
        "",
        2,
        "invalid anchor",
    );

    // Cut 200 bytes (the last few records): recovery drops the torn one, the store opens
    // shorter than the anchor.
    // The chain alone cannot see it; the Merkle leaves file, outside the stream's directory,
    // still says how long the stream was.
    cut_bytes(&stream_segment(&dir, 1), 200);
    let later = fails(&["verify", s(&dir)], "", 1, "are missing").stdout;
    assert!(later.contains("TAMPERED"), "{later}");
    assert!(
        later.contains("note: on open, recovery"),
        "the cut is shown: {later}"
    );
    let run = fails(&["verify", s(&dir), "--anchor", &anchor], "", 1, "cut off");
    assert!(run.stdout.contains("TAMPERED"), "{}", run.stdout);
}

#[test]
fn a_cut_catalogue_is_tampering() {
    let (_temp, dir) = store_with(3);
    let anchor = anchor_of(&dir, "audit");
    cut_bytes(&stream_segment(&dir, 0), 30);
    fails(&["verify", s(&dir)], "", 1, "catalogue names no stream 1");
    fails(
        &["verify", s(&dir), "--anchor", &anchor],
        "",
        1,
        "\"audit\": missing",
    );
}

/// With the catalogue's entry for stream 1 cut off, `append --create` of a new name must not
/// name stream 1's records (the next id): it fails with exit 1 and the store still verifies
/// as tampered (writing the catalogue entry and then failing the append would leave a store
/// that verifies intact). And an event over the size limit is refused before a store or
/// stream is created.
#[test]
fn a_failed_create_leaves_no_trace() {
    let (_temp, dir) = store_with(3);
    cut_bytes(&stream_segment(&dir, 0), 30);
    let run = fails(
        &["append", s(&dir), "other-name", "--create"],
        "{\"x\":1}\n",
        1,
        "catalogue does not name",
    );
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    fails(&["verify", s(&dir)], "", 1, "catalogue names no stream 1");

    let fresh = tempfile::tempdir().unwrap();
    let store = fresh.path().join("new-store");
    let big = fresh.path().join("big.txt");
    std::fs::write(&big, vec![b'x'; kimberlite::MAX_EVENT_BYTES + 1]).unwrap();
    fails(
        &["append", s(&store), "big", "--create", "--file", s(&big)],
        "",
        2,
        "over the limit",
    );
    assert!(!store.exists(), "no store was created for refused input");
}

/// A torn tail is cut by whichever command opens the store first: that command says so on
/// standard error and names where the cut bytes were kept, so a cut made by a `read` is not
/// left untold.
#[test]
fn any_command_tells_of_a_torn_tail_it_cut_and_keeps_the_bytes() {
    let (_temp, dir) = store_with(2);
    // The third event a batch of its own: a torn write of it cuts it alone (a batch torn in
    // its middle is cut whole: row 10).
    ok(
        &["append", s(&dir), "audit"],
        "{\"event\":\"record.viewed\",\"seq\":00002}\n",
    );
    let segment = stream_segment(&dir, 1);
    let original = std::fs::read(&segment).unwrap();
    // A torn write: the never-synced tree files are lost with it, so nothing in the store says
    // the third event was ever there (with them, the cut is lost data: the test above).
    std::fs::remove_dir_all(dir.join("merkle")).unwrap();
    cut_bytes(&segment, 7);
    let torn = std::fs::read(&segment).unwrap();
    // A read-only command tells what recovery would do, and does not do it.
    let looked = run(&["read", s(&dir), "audit"], "");
    assert_eq!(looked.code, 0, "{}", looked.stderr);
    assert_eq!(
        looked.stdout.lines().count(),
        2,
        "the torn third event is not returned"
    );
    assert!(
        looked.stderr.contains("recovery would"),
        "{}",
        looked.stderr
    );
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        torn,
        "a read-only command cut"
    );
    // A writing command cuts it, keeps the bytes and says so.
    let run = run(&["append", s(&dir), "audit"], "x\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("note: on open, recovery"),
        "{}",
        run.stderr
    );
    let kept = run
        .stderr
        .split("kept in ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("names the copy")
        .trim();
    let kept_bytes = std::fs::read(kept).unwrap();
    let cut_at = kept_bytes.len();
    assert_eq!(
        kept_bytes,
        original[torn.len() - cut_at..original.len() - 7]
    );
    let again = run_quiet(&["read", s(&dir), "audit"]);
    assert!(again.is_empty(), "told once: {again}");
    // verify, on every later open, still lists the kept bytes, in text and in JSON.
    let report = ok(&["verify", s(&dir)], "");
    assert!(report.contains(&format!("kept in {kept}")), "{report}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["verify", s(&dir), "--json"], "")).unwrap();
    assert_eq!(json["kept_torn_tails"][0]["file"], kept);
    assert_eq!(json["kept_torn_tails"][0]["bytes"], kept_bytes.len());
}

fn run_quiet(args: &[&str]) -> String {
    run(args, "").stderr
}

/// Several processes creating the same new store at once all succeed: none of them takes the
/// half-created directory for "not a store" (a race: the test repeats it).
#[test]
fn concurrent_creators_of_one_store_all_succeed() {
    let temp = tempfile::tempdir().unwrap();
    for round in 0..8 {
        let dir = temp.path().join(format!("store-{round}"));
        let children: Vec<_> = (0..4)
            .map(|_| {
                let mut child = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
                    .args(["append", s(&dir), "s", "--create"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(b"{\"e\":1}\n")
                    .unwrap();
                child
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let events = ok(&["read", s(&dir), "s"], "");
        assert_eq!(events.lines().count(), 4, "round {round}");
    }
}

/// A stream whose files open cannot read is shown as damaged, not as an empty stream, and
/// left out of the event total.
#[test]
fn inspect_shows_a_stream_it_cannot_open_as_damaged() {
    let (_temp, dir) = store_with(10);
    ok(
        &["append", s(&dir), "billing", "--create"],
        "invoice 1\ninvoice 2\n",
    );
    let verified = ok(&["verify", s(&dir)], "");
    let anchor = verified
        .split_whitespace()
        .find(|word| word.starts_with("audit@"))
        .unwrap_or_else(|| panic!("{verified}"))
        .to_owned();
    let audit_segment = dir
        .join("streams")
        .join(format!("{:020}", 1))
        .join(format!("{:08}.seg", 0));
    let mut bytes = std::fs::read(&audit_segment).unwrap();
    bytes[..8].copy_from_slice(b"GARBAGE!");
    std::fs::write(&audit_segment, &bytes).unwrap();

    let out = ok(&["inspect", s(&dir)], "");
    let audit_row = out
        .lines()
        .find(|line| line.contains("\"audit\""))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(audit_row.contains("damaged"), "{out}");
    assert!(
        out.contains("2 events in intact streams (1 damaged"),
        "{out}"
    );
    let json = ok(&["inspect", s(&dir), "audit", "--json"], "");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let audit = &value["streams"][0];
    assert_eq!(audit["damaged"], true, "{json}");
    assert!(
        audit["events"].is_null() && audit["head"].is_null(),
        "{json}"
    );
    fails(&["verify", s(&dir)], "", 1, "audit");
    // Its anchor cannot be checked: reported as tampered (exit 1), not a usage error (2).
    fails(
        &["verify", s(&dir), "--anchor", &anchor],
        "",
        1,
        "anchor cannot be checked",
    );
}

/// Lost data is tampering, however it was lost: `streams/` removed (catalogue included), one
/// stream's directory removed, an active segment cut back in the middle. The Merkle leaves
/// file outside the stream's directory is the evidence `verify` names.
#[test]
fn lost_streams_and_cut_segments_are_tampered() {
    for attack in ["all streams", "one stream", "cut segment"] {
        let (_temp, dir) = store_with(50);
        let stream = dir.join("streams").join(format!("{:020}", 1));
        match attack {
            "all streams" => std::fs::remove_dir_all(dir.join("streams")).unwrap(),
            "one stream" => std::fs::remove_dir_all(&stream).unwrap(),
            _ => {
                let segment = stream_segment(&dir, 1);
                let len = std::fs::metadata(&segment).unwrap().len();
                cut_bytes(&segment, len / 2);
            }
        }
        let out = fails(&["verify", s(&dir)], "", 1, "TAMPERED");
        assert!(
            out.stdout.contains("are missing"),
            "{attack}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains("level-00.hashes"),
            "{attack}: {}",
            out.stdout
        );
    }
}

/// A flipped bit in `kimberlite.json` is damage to a store (exit 1, the file named), not "not a
/// Kimberlite store"; a garbage catalogue header leaves the other streams verified.
#[test]
fn a_damaged_marker_or_catalogue_header_is_named() {
    let (_temp, dir) = store_with(5);
    let marker = dir.join("kimberlite.json");
    let original = std::fs::read(&marker).unwrap();
    let mut flipped = original.clone();
    flipped[3] ^= 0x01;
    std::fs::write(&marker, flipped).unwrap();
    let run = fails(&["verify", s(&dir)], "", 1, "is damaged");
    assert!(run.stdout.contains(s(&marker)), "{}", run.stdout);
    assert!(
        !run.stdout.contains("not a Kimberlite store"),
        "{}",
        run.stdout
    );
    std::fs::write(&marker, original).unwrap();

    let catalogue = dir
        .join("streams")
        .join(format!("{:020}", 0))
        .join("00000000.seg");
    let mut bytes = std::fs::read(&catalogue).unwrap();
    bytes[..40].fill(0xA5);
    std::fs::write(&catalogue, bytes).unwrap();
    let run = fails(&["verify", s(&dir)], "", 1, "TAMPERED");
    assert!(run.stdout.contains(s(&catalogue)), "{}", run.stdout);
    assert!(run.stdout.contains("holds 5 events"), "{}", run.stdout);
}
