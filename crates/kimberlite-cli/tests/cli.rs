//! Runs the real `kimberlite` binary: every subcommand, each user error, and `verify`'s exit
//! codes on an intact and a tampered store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn kimberlite(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kimberlite");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for kimberlite")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], stdin: &str) -> Run {
    let output = kimberlite(args, stdin);
    let run = Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "panic: {}", run.stderr);
    assert!(
        !run.stderr.contains("stack backtrace"),
        "backtrace: {}",
        run.stderr
    );
    run
}

fn ok(args: &[&str], stdin: &str) -> String {
    let run = run(args, stdin);
    assert_eq!(
        run.code, 0,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run.stdout
}

fn fails(args: &[&str], stdin: &str, code: i32, needle: &str) -> Run {
    let run = run(args, stdin);
    assert_eq!(
        run.code, code,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(needle) || run.stdout.contains(needle),
        "{args:?}: {needle:?} not in\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    run
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// A store in a fresh temp dir with stream "audit" holding `events` numbered JSON events.
fn store_with(events: usize) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let input: String = (0..events)
        .map(|i| format!("{{\"event\":\"record.viewed\",\"seq\":{i:05}}}\n"))
        .collect();
    ok(&["append", s(&dir), "audit", "--create"], &input);
    (temp, dir)
}

fn segments(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            segments(&path, out);
        } else if path.extension().is_some_and(|e| e == "seg") {
            out.push(path);
        }
    }
}

#[test]
fn help_and_garbage_arguments() {
    let help = ok(&["--help"], "");
    for command in [
        "demo", "append", "read", "tail", "verify", "inspect", "bench",
    ] {
        assert!(help.contains(command), "{command} missing from --help");
    }
    fails(&["frobnicate"], "", 2, "Usage");
    fails(&["read"], "", 2, "Usage");
    fails(
        &["read", "dir", "stream", "--from", "minus-one"],
        "",
        2,
        "invalid value",
    );
}

#[test]
fn demo_runs_small_and_shows_tampering() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("demo-store");
    let out = ok(&["demo", s(&dir), "--events", "400"], "");
    assert!(out.contains("INTACT"), "{out}");
    assert!(out.contains("TAMPERED"), "{out}");
    assert!(out.contains("offset"), "{out}");
    assert!(out.contains("still verifies intact: yes"), "{out}");
    assert!(out.contains("verify --anchor says TAMPERED"), "{out}");
    assert!(out.contains("events were cut off"), "{out}");
    // The kept store is intact and usable.
    ok(&["verify", s(&dir)], "");
    let listed = ok(&["read", s(&dir), "staff-logins", "--limit", "1"], "");
    assert!(listed.contains("staff.login"), "{listed}");
    fails(&["demo", s(&dir)], "", 2, "already holds a store");
    // The default (temporary directory) also works.
    let out = ok(&["demo", "--events", "40"], "");
    assert!(out.contains("temporary"), "{out}");
}

#[test]
fn append_and_read_round_trip() {
    let (_temp, dir) = store_with(3);
    let out = ok(
        &["append", s(&dir), "audit", "--expect", "3"],
        "fourth\r\n\n  \nfifth\n",
    );
    assert!(out.contains("appended 2 events"), "{out}");
    assert!(out.contains("offsets 3..4"), "{out}");
    let all = ok(&["read", s(&dir), "audit"], "");
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[3], "fourth");
    let page = ok(
        &["read", s(&dir), "audit", "--from", "1", "--limit", "2"],
        "",
    );
    assert_eq!(page.lines().count(), 2);
    assert!(
        page.starts_with("{\"event\":\"record.viewed\",\"seq\":00001}"),
        "{page}"
    );
    let json = ok(&["read", s(&dir), "audit", "--from", "4", "--json"], "");
    let value: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(value["offset"], 4);
    assert_eq!(value["payload"], "fifth");
    let file = dir.parent().unwrap().join("events.txt");
    std::fs::write(&file, "from-a-file\n").unwrap();
    ok(
        &["append", s(&dir), "other", "--create", "--file", s(&file)],
        "",
    );
    assert_eq!(ok(&["read", s(&dir), "other"], ""), "from-a-file\n");
}

#[test]
fn append_errors_are_actionable() {
    let (temp, dir) = store_with(2);
    fails(
        &["append", s(&dir), "audit", "--expect", "0"],
        "x\n",
        2,
        "nothing was written",
    );
    fails(
        &["append", s(&dir), "missing"],
        "x\n",
        2,
        "no stream named \"missing\"",
    );
    fails(&["append", s(&dir), "audit"], "\n\n", 2, "no events");
    let nowhere = temp.path().join("nowhere");
    fails(
        &["append", s(&nowhere), "audit"],
        "x\n",
        2,
        "does not exist",
    );
    assert!(
        !nowhere.exists(),
        "append without --create must not create a store"
    );
    let missing_file = temp.path().join("missing.txt");
    fails(
        &["append", s(&dir), "audit", "--file", s(&missing_file)],
        "",
        2,
        "cannot read",
    );
    let not_a_store = temp.path().join("documents");
    std::fs::create_dir(&not_a_store).unwrap();
    std::fs::write(not_a_store.join("letter.txt"), "hello").unwrap();
    fails(
        &["append", s(&not_a_store), "audit", "--create"],
        "x\n",
        2,
        "not a Kimberlite store",
    );
    fails(
        &["append", s(&dir), "bad\tname", "--create"],
        "x\n",
        2,
        "invalid stream name",
    );
    // Nothing above changed the stream.
    assert_eq!(ok(&["read", s(&dir), "audit"], "").lines().count(), 2);
}

#[test]
fn read_commands_never_create_stores() {
    let temp = tempfile::tempdir().unwrap();
    let nowhere = temp.path().join("nowhere");
    for command in ["read", "tail"] {
        fails(&[command, s(&nowhere), "audit"], "", 2, "does not exist");
    }
    fails(&["verify", s(&nowhere)], "", 2, "does not exist");
    fails(&["inspect", s(&nowhere)], "", 2, "does not exist");
    assert!(!nowhere.exists());
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(&["verify", s(&empty)], "", 2, "not a Kimberlite store");
    fails(&["inspect", s(&empty)], "", 2, "not a Kimberlite store");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    let (_temp, dir) = store_with(1);
    fails(
        &["read", s(&dir), "nope"],
        "",
        2,
        "streams in this store: audit",
    );
    fails(&["verify", s(&dir), "nope"], "", 2, "no stream named");
    fails(&["inspect", s(&dir), "nope"], "", 2, "no stream named");
}

#[test]
fn verify_exit_codes_intact_and_tampered() {
    let (_temp, dir) = store_with(100);
    let out = ok(&["verify", s(&dir)], "");
    assert!(out.contains("intact: 101 records"), "{out}");
    ok(&["verify", s(&dir), "audit"], "");
    let json = ok(&["verify", s(&dir), "--json"], "");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["intact"], true);

    let mut files = Vec::new();
    segments(&dir, &mut files);
    let segment = files
        .iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(segment).unwrap();
    let position = bytes.len() / 2;
    bytes[position] ^= 0x01;
    std::fs::write(segment, &bytes).unwrap();

    let run = fails(&["verify", s(&dir)], "", 1, "TAMPERED");
    assert!(
        run.stdout.contains("\"audit\" (id 1): offset"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(".seg"), "{}", run.stdout);
    fails(&["verify", s(&dir), "audit"], "", 1, "offset");
    let run = run_json_verify(&dir);
    let problem = &run["problems"][0];
    assert_eq!(problem["name"], "audit");
    let offset = problem["offset"].as_u64().unwrap();
    assert!(
        (40..=60).contains(&offset),
        "offset {offset} for a flip in the middle"
    );
    let byte = problem["byte"].as_u64().unwrap();
    assert!(
        byte <= position as u64,
        "record starts before the flipped byte"
    );
    assert!(problem["file"].as_str().unwrap().ends_with(".seg"));
    // Reading past the damage fails with exit code 1 too.
    fails(&["read", s(&dir), "audit"], "", 1, "offset");
}

/// A store of another format version (segment headers of version 1, as written by the drafts
/// before record format 3) is not "tampered": every command refuses it with the reason and
/// exit code 2, and no file changes.
#[test]
fn a_store_of_another_format_version_is_refused_not_reported_tampered() {
    let (_temp, dir) = store_with(10);
    let mut files = Vec::new();
    segments(&dir, &mut files);
    for file in &files {
        let mut bytes = std::fs::read(file).unwrap();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..36]);
        bytes[36..40].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(file, &bytes).unwrap();
    }
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    for args in [
        vec!["verify", s(&dir)],
        vec!["inspect", s(&dir)],
        vec!["read", s(&dir), "audit"],
    ] {
        let run = fails(&args, "", 2, "segment format version 1");
        assert!(
            run.stderr.contains("another version of Kimberlite"),
            "{}",
            run.stderr
        );
        assert!(!run.stdout.contains("NOT INTACT"), "{}", run.stdout);
    }
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(before == after, "a file changed");
}

#[test]
fn verify_reports_a_store_too_damaged_to_open_as_not_intact() {
    let (_temp, dir) = store_with(10);
    let mut files = Vec::new();
    segments(&dir, &mut files);
    for file in &files {
        let mut bytes = std::fs::read(file).unwrap();
        bytes[0] ^= 0xff; // the segment header's magic
        std::fs::write(file, &bytes).unwrap();
    }
    let run = fails(&["verify", s(&dir)], "", 1, "");
    assert!(run.stdout.contains("NOT INTACT"), "{}", run.stdout);
    assert!(run.stdout.contains(".seg"), "{}", run.stdout);
    assert!(
        !run.stderr.contains("kimberlite verify DIR"),
        "{}",
        run.stderr
    );
    let json = run_json_verify(&dir);
    assert_eq!(json["intact"], false);
    assert!(
        json["error"].as_str().unwrap().contains("segment"),
        "{json}"
    );
}

fn run_json_verify(dir: &Path) -> serde_json::Value {
    let run = run(&["verify", s(dir), "--json"], "");
    assert_eq!(run.code, 1, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn inspect_shows_streams() {
    let (_temp, dir) = store_with(10);
    let out = ok(&["inspect", s(&dir)], "");
    assert!(out.contains("\"audit\""), "{out}");
    assert!(out.contains("(catalogue)"), "{out}");
    let json = ok(&["inspect", s(&dir), "audit", "--json"], "");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let streams = value["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["events"], 10);
    assert_eq!(streams[0]["head"].as_str().unwrap().len(), 64);
}

#[test]
fn tail_prints_and_follows() {
    let (_temp, dir) = store_with(2);
    let out = ok(
        &[
            "tail",
            s(&dir),
            "audit",
            "--from",
            "0",
            "--polls",
            "2",
            "--interval-ms",
            "10",
        ],
        "",
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    let none = ok(&["tail", s(&dir), "audit", "--polls", "1"], "");
    assert!(
        none.is_empty(),
        "without --from, tail starts at the end: {none}"
    );
}

#[test]
fn bench_reports_rates_and_latency() {
    let out = ok(
        &["bench", "--events", "300", "--batch", "30", "--size", "64"],
        "",
    );
    assert!(out.contains("events/s"), "{out}");
    assert!(out.contains("p99"), "{out}");
    let out = ok(&["bench", "--events", "20", "--batch", "10", "--fsync"], "");
    assert!(out.contains("synced"), "{out}");
    fails(&["bench", "--batch", "0"], "", 2, "at least 1");
}

#[test]
fn a_store_in_use_is_refused() {
    let (_temp, dir) = store_with(1);
    let store = kimberlite::Kimberlite::open(&dir).unwrap();
    fails(&["append", s(&dir), "audit"], "x\n", 2, "in use");
    fails(&["verify", s(&dir)], "", 2, "in use");
    drop(store);
    ok(&["append", s(&dir), "audit"], "x\n");
}

#[test]
fn appends_succeed_while_tail_polls() {
    let (_temp, dir) = store_with(1);
    let tail = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args([
            "tail",
            s(&dir),
            "audit",
            "--from",
            "0",
            "--interval-ms",
            "5",
        ])
        .args(["--polls", "150"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for i in 0..10 {
        ok(&["append", s(&dir), "audit"], &format!("appended-{i}\n"));
    }
    let output = tail.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.lines().count() >= 1, "{printed}");
    assert_eq!(ok(&["read", s(&dir), "audit"], "").lines().count(), 11);
}

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
    cut_bytes(&stream_segment(&dir, 1), 200);
    let later = ok(&["verify", s(&dir)], "");
    assert!(
        later.contains("intact"),
        "the chain alone cannot see it: {later}"
    );
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
/// as tampered. (It used to write the catalogue entry, fail the append, and leave a store that
/// verified intact.) And an event over the size limit is refused before a store or stream is
/// created.
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
/// standard error and names where the cut bytes were kept (before, only `verify` and
/// `inspect` said anything, so after a `read` the cut went untold).
#[test]
fn any_command_tells_of_a_torn_tail_it_cut_and_keeps_the_bytes() {
    let (_temp, dir) = store_with(3);
    let segment = stream_segment(&dir, 1);
    let original = std::fs::read(&segment).unwrap();
    cut_bytes(&segment, 7);
    let run = run(&["read", s(&dir), "audit"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().count(),
        2,
        "the torn third event is not returned"
    );
    assert!(
        run.stderr.contains("note: on open, recovery"),
        "{}",
        run.stderr
    );
    let kept = run
        .stderr
        .split("kept in ")
        .nth(1)
        .expect("names the copy")
        .trim();
    let kept_bytes = std::fs::read(kept).unwrap();
    let cut_at = std::fs::metadata(&segment).unwrap().len() as usize;
    assert_eq!(kept_bytes, original[cut_at..original.len() - 7]);
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
/// half-created directory for "not a store" (some did, one run in a few).
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
