//! Runs the real `kimberlite` binary: every subcommand, each user error, and `verify`'s exit
//! codes on an intact and a tampered store.

mod common;

use std::path::Path;

use common::{fails, finish_tail, ok, run, s, segments, spawn_tail, store_with};

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
    assert!(out.contains("Plain verify says TAMPERED"), "{out}");
    // Three witnesses: a witnessed checkpoint, a rolled-back copy refused by each of them and
    // by the store's own guard.
    assert!(out.contains(": WITNESSED"), "{out}");
    assert_eq!(out.matches("409 again").count(), 3, "{out}");
    assert!(out.contains("would refuse to sign"), "{out}");
    assert!(out.contains("now shorter than what was signed"), "{out}");
    assert!(out.contains("Erased patient P-00042"), "{out}");
    assert!(
        out.contains("offset 1: erased (record at offset 0 of _erasure)"),
        "{out}"
    );
    assert!(out.contains("still verifies INTACT"), "{out}");
    assert!(
        out.contains("taken before the erasure still verifies: yes"),
        "{out}"
    );
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

/// A store of another format version (segment headers of version 1) is not "tampered": every
/// command refuses it with the reason and exit code 2, and no file changes.
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
    // Every segment garbage, the catalogue's included: the store still opens and verify
    // names each one (issue 22: one damaged stream must not stop the store from opening).
    let run = fails(&["verify", s(&dir)], "", 1, "");
    assert!(run.stdout.contains("NOT INTACT"), "{}", run.stdout);
    assert!(run.stdout.contains(".seg"), "{}", run.stdout);
    // A store too damaged to open at all: its marker is damaged.
    std::fs::write(dir.join("kimberlite.json"), "{\"kimberlite_store\":").unwrap();
    let run = fails(&["verify", s(&dir)], "", 1, "");
    assert!(run.stdout.contains("NOT INTACT"), "{}", run.stdout);
    assert!(run.stdout.contains("kimberlite.json"), "{}", run.stdout);
    assert!(
        !run.stderr.contains("kimberlite verify DIR"),
        "{}",
        run.stderr
    );
    let json = run_json_verify(&dir);
    assert_eq!(json["intact"], false);
    assert!(
        json["error"].as_str().unwrap().contains("kimberlite.json"),
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
    // A read-only command takes no lock: it runs beside the writer (issue 22 point 4).
    assert!(ok(&["verify", s(&dir)], "").contains("intact"));
    drop(store);
    ok(&["append", s(&dir), "audit"], "x\n");
}

#[test]
fn appends_succeed_while_tail_polls() {
    let (_temp, dir) = store_with(1);
    let tail = spawn_tail(&dir, 5, 150);
    for i in 0..10 {
        ok(&["append", s(&dir), "audit"], &format!("appended-{i}\n"));
    }
    let printed = finish_tail(tail);
    assert!(printed.lines().count() >= 1, "{printed}");
    assert_eq!(ok(&["read", s(&dir), "audit"], "").lines().count(), 11);
}
