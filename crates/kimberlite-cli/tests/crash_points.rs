//! kill -9 of a real `kimberlite erase`, `kimberlite retain` and `kimberlite append --subject`
//! between two of their steps (`docs/TESTING.md`, the fault table): each is run
//! with `KIMBERLITE_TEST_CRASH_POINT` naming a step, waits there, and is killed (SIGKILL).
//! Reopened, the store holds the subject wholly erased and recorded or not erased at all, the
//! prune done or not, every erasure record counting the events the store holds under its key,
//! and `verify` says intact.

mod common;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{ok, run, s};
use kimberlite::sealed::{Content, Erasures, MasterKey, SubjectKeys, KEYS_DIR};
use kimberlite::{Config, Error, ExpectedOffset, Kimberlite, Offset};
use kimberlite_storage::crash_point::CRASH_POINT_ENV;

/// How long a command may take to reach its crash point.
const REACH_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `kimberlite args` (stdin `input`) until it reports `point`, then kills it with
/// SIGKILL. Fails if it ends or stalls before the point.
fn kill_at(point: &str, args: &[&str], input: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(args)
        .env(CRASH_POINT_ENV, point)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kimberlite");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let stderr = child.stderr.take().expect("stderr");
    let (sender, receiver) = std::sync::mpsc::channel();
    let wanted = format!("kimberlite crash point: {point}");
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line == wanted {
                let _ = sender.send(Ok(()));
                return;
            }
            seen.push(line);
        }
        let _ = sender.send(Err(seen.join("\n")));
    });
    let reached = receiver.recv_timeout(REACH_TIMEOUT);
    let _ = child.kill();
    let _ = child.wait();
    match reached {
        Ok(Ok(())) => {}
        Ok(Err(stderr)) => panic!("{args:?} ended before crash point {point}: {stderr}"),
        Err(_) => panic!("{args:?} did not reach crash point {point} in time"),
    }
}

fn key_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join(KEYS_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "key"))
        .collect()
}

fn assert_intact(dir: &Path) {
    let verified = ok(&["verify", s(dir)], "");
    assert!(
        verified.lines().any(|line| line.starts_with("intact: ")),
        "{verified}"
    );
}

/// A store with `alice` (7 events in two streams) and `bob` (1) sealed, and plain events.
fn sealed_store(dir: &Path, master: &str) {
    let store = Kimberlite::open(dir).unwrap();
    let records = store.create_stream("records").unwrap();
    let notes = store.create_stream("notes").unwrap();
    let keys = SubjectKeys::open(&store, Arc::new(MasterKey::from_text(master).unwrap())).unwrap();
    store
        .append(records, ["plain"], ExpectedOffset::Any)
        .unwrap();
    keys.append(records, "alice", ["a1", "a2", "a3"], ExpectedOffset::Any)
        .unwrap();
    keys.append(records, "bob", ["b1"], ExpectedOffset::Any)
        .unwrap();
    keys.append(
        notes,
        "alice",
        ["a4", "a5", "a6", "a7"],
        ExpectedOffset::Any,
    )
    .unwrap();
}

/// Alice's events in both streams, as read with the master key: all opened or all erased (by
/// the one recorded erasure, which counts them all); bob's always opened. True when erased.
fn alice_erased(store: &Kimberlite, keys: &SubjectKeys, point: &str) -> bool {
    let mut opened = Vec::new();
    let mut erased = Vec::new();
    for name in ["records", "notes"] {
        let id = store.stream(name).unwrap();
        for event in keys.read(id, Offset::ZERO, u64::MAX).unwrap() {
            match event.content {
                Content::Plain(_) => {}
                Content::Opened { payload, .. } if payload.starts_with(b"b") => {}
                Content::Opened { payload, .. } => opened.push(payload),
                Content::Erased { erasure, .. } => erased.push(erasure),
                other => panic!("{point}: {other:?}"),
            }
        }
    }
    match (opened.len(), erased.len()) {
        (7, 0) => false,
        (0, 7) => {
            assert!(erased.iter().all(|e| e.events == 7), "{point}: {erased:?}");
            true
        }
        other => panic!("{point}: alice half erased: {other:?}"),
    }
}

#[test]
fn erase_killed_at_each_step_is_whole_or_undone() {
    let temp = tempfile::tempdir().unwrap();
    let master_file = temp.path().join("master.key");
    let (_, master) = MasterKey::generate();
    std::fs::write(&master_file, &master).unwrap();
    let points = [
        ("erase:counted", Some(false)),
        ("erase:record-appended", None),
        ("erase:record-synced", Some(true)),
        ("erase:key-removed", Some(true)),
    ];
    for (round, (point, expected)) in points.into_iter().enumerate() {
        let dir = temp.path().join(format!("store-{round}"));
        sealed_store(&dir, &master);
        let erase = ["erase", s(&dir), "alice", "--master-key", s(&master_file)];
        kill_at(point, &[&erase[..], &["--by", "dpo"]].concat(), "");
        // Before any open with the master key: a key file is removed only once its record is
        // durable, never before.
        let recorded = {
            let store = Kimberlite::open_read_only(&dir, Config::default()).unwrap();
            Erasures::load(&store).unwrap().iter().count()
        };
        assert!(recorded == 1 || key_files(&dir).len() == 2, "{point}");
        assert_intact(&dir);

        let store = Kimberlite::open(&dir).unwrap();
        let keys =
            SubjectKeys::open(&store, Arc::new(MasterKey::from_text(&master).unwrap())).unwrap();
        let erased = alice_erased(&store, &keys, point);
        assert_eq!(
            keys.erasures().iter().count(),
            usize::from(erased),
            "{point}"
        );
        assert_eq!(key_files(&dir).len(), if erased { 1 } else { 2 }, "{point}");
        if let Some(expected) = expected {
            assert_eq!(erased, expected, "{point}");
        }
        assert!(store.verify_all().unwrap().is_intact(), "{point}");
        drop(keys);
        drop(store);

        // The erasure runs again to the end, or says it was done.
        let again = run(&erase, "");
        if erased {
            assert_eq!(again.code, 2, "{point}: {}", again.stderr);
            assert!(again.stderr.contains("erased already"), "{}", again.stderr);
        } else {
            assert_eq!(again.code, 0, "{point}: {}", again.stderr);
            assert!(again.stdout.contains("the 7 events"), "{}", again.stdout);
        }
        let store = Kimberlite::open(&dir).unwrap();
        let keys =
            SubjectKeys::open(&store, Arc::new(MasterKey::from_text(&master).unwrap())).unwrap();
        assert!(alice_erased(&store, &keys, point));
        drop(keys);
        drop(store);
        assert_intact(&dir);
    }
}

#[test]
fn a_sealed_append_killed_while_saving_its_counts_is_counted_whole() {
    let temp = tempfile::tempdir().unwrap();
    let master_file = temp.path().join("master.key");
    let (_, master) = MasterKey::generate();
    std::fs::write(&master_file, &master).unwrap();
    for (round, point) in ["counts:pending", "counts:key-saved"]
        .into_iter()
        .enumerate()
    {
        let dir = temp.path().join(format!("store-{round}"));
        sealed_store(&dir, &master);
        let lines: String = (0..50).map(|n| format!("{{\"visit\":{n}}}\n")).collect();
        let append = [
            "append",
            s(&dir),
            "notes",
            "--subject",
            "alice",
            "--master-key",
            s(&master_file),
        ];
        kill_at(point, &append, &lines);
        assert_intact(&dir);
        let store = Kimberlite::open(&dir).unwrap();
        let keys =
            SubjectKeys::open(&store, Arc::new(MasterKey::from_text(&master).unwrap())).unwrap();
        let receipt = keys.erase("alice", "dpo").unwrap();
        assert_eq!(
            receipt.events, 57,
            "{point}: the 7 events and the 50 appended"
        );
    }
}

#[test]
fn retain_killed_at_each_step_is_done_or_not() {
    let temp = tempfile::tempdir().unwrap();
    let key = temp.path().join("log.key");
    ok(&["keygen", "--name", "log", "--out", s(&key)], "");
    for (round, point) in [
        "retain:before-commit",
        "retain:committed",
        "retain:first-segment-deleted",
    ]
    .into_iter()
    .enumerate()
    {
        let dir = temp.path().join(format!("store-{round}"));
        {
            let store =
                Kimberlite::open_with(&dir, Config::default().max_segment_size(2048)).unwrap();
            let id = store.create_stream("audit").unwrap();
            for batch in 0..30 {
                let events: Vec<String> = (batch * 10..batch * 10 + 10)
                    .map(|i| format!("{{\"event\":\"visit\",\"n\":{i}}}"))
                    .collect();
                store.append(id, events, ExpectedOffset::Any).unwrap();
            }
        }
        ok(&["checkpoint", s(&dir), "audit", "--key", s(&key)], "");
        let retain = ["retain", s(&dir), "audit", "--before", "250"];
        kill_at(point, &retain, "");

        let store = Kimberlite::open(&dir).unwrap();
        let id = store.stream("audit").unwrap();
        let first = store.first_offset(id).unwrap();
        let done = first != Offset::ZERO;
        match store.read(id, Offset::ZERO, u64::MAX) {
            Ok(events) => {
                assert!(!done, "{point}");
                assert_eq!(events.len(), 300, "{point}");
            }
            Err(Error::Pruned { .. }) => assert!(done, "{point}"),
            Err(other) => panic!("{point}: {other}"),
        }
        if point == "retain:before-commit" {
            assert!(
                !done,
                "{point}: nothing is dropped before the cut is recorded"
            );
        } else {
            assert!(done, "{point}: a recorded cut is completed at open");
        }
        let kept = store.read(id, first, u64::MAX).unwrap();
        assert_eq!(kept.len() as u64, 300 - first.as_u64(), "{point}");
        assert!(store.verify_all().unwrap().is_intact(), "{point}");
        drop(store);
        assert_intact(&dir);

        // Run again, it cuts (or finds nothing more to cut) at the same segment boundary.
        ok(&retain, "");
        let store = Kimberlite::open(&dir).unwrap();
        let after = store.first_offset(id).unwrap();
        assert!(
            after > Offset::ZERO && after <= Offset::new(250),
            "{point}: {after}"
        );
        if done {
            assert_eq!(after, first, "{point}");
        }
        drop(store);
        assert_intact(&dir);
    }
}
