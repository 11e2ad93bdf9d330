//! Commands that refuse input which would mislead or write where they must not: `bench --dir`
//! outside a new or empty directory, look-alike stream names, non-UTF-8 events printed as text.

mod common;

use common::{fails, ok, s, store_with};

#[test]
fn bench_dir_must_be_new_or_empty() {
    let (temp, dir) = store_with(2);
    let before = snapshot(&dir);
    let run = fails(
        &["bench", "--events", "10", "--batch", "5", "--dir", s(&dir)],
        "",
        2,
        "holds a Kimberlite store",
    );
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert_eq!(snapshot(&dir), before, "bench wrote into an existing store");
    let listed = ok(&["inspect", s(&dir)], "");
    assert!(!listed.contains("bench"), "{listed}");

    // Any non-empty directory, and a file, are refused too.
    let other = temp.path().join("notes");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("todo.txt"), "keep me").unwrap();
    fails(
        &["bench", "--events", "10", "--dir", s(&other)],
        "",
        2,
        "is not empty",
    );
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
    let file = other.join("todo.txt");
    fails(
        &["bench", "--events", "10", "--dir", s(&file)],
        "",
        2,
        "is not a directory",
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // A new path and an empty directory are fine, and keep the store.
    let fresh = temp.path().join("fresh");
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for dir in [&fresh, &empty] {
        ok(
            &["bench", "--events", "10", "--batch", "5", "--dir", s(dir)],
            "",
        );
        assert!(dir.join("kimberlite.json").exists());
    }
    // Running it again on what it left is refused: the second run would append to `bench`.
    fails(
        &["bench", "--events", "10", "--dir", s(&empty)],
        "",
        2,
        "holds a Kimberlite store",
    );
}

/// Every file under `dir` with its bytes, sorted by path.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn plain_read_refuses_events_that_are_not_utf8() {
    let (temp, dir) = store_with(2);
    let file = temp.path().join("binary.txt");
    std::fs::write(&file, b"caf\xc3\xa9\nraw\xff\x00bytes\nafter\n").unwrap();
    ok(&["append", s(&dir), "audit", "--file", s(&file)], "");

    // Text up to the binary event, then an error naming it and pointing to --json.
    let run = fails(&["read", s(&dir), "audit"], "", 2, "offset 3");
    assert!(run.stderr.contains("not UTF-8"), "{}", run.stderr);
    assert!(run.stderr.contains("--json"), "{}", run.stderr);
    assert!(!run.stdout.contains('\u{fffd}'), "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert_eq!(lines[2], "café");
    // A page that avoids it reads as text; --json shows its exact bytes.
    let after = ok(&["read", s(&dir), "audit", "--from", "4"], "");
    assert_eq!(after, "after\n");
    let json = ok(
        &[
            "read",
            s(&dir),
            "audit",
            "--from",
            "3",
            "--limit",
            "1",
            "--json",
        ],
        "",
    );
    let value: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(value["payload_hex"], "726177ff006279746573");
    // tail prints the same way.
    let run = fails(
        &["tail", s(&dir), "audit", "--from", "3", "--polls", "1"],
        "",
        2,
        "not UTF-8",
    );
    assert!(run.stderr.contains("tail --json"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn look_alike_stream_names_are_refused() {
    let (_temp, dir) = store_with(1);
    ok(&["append", s(&dir), "ok", "--create"], "one\n");
    // "оk" with a Cyrillic о, and "ok" with a zero-width space: refused, nothing created.
    for name in ["\u{43e}k", "ok\u{200b}"] {
        let run = fails(&["append", s(&dir), name, "--create"], "two\n", 2, "name");
        assert!(
            run.stderr.contains("scripts") || run.stderr.contains("invisible"),
            "{}",
            run.stderr
        );
    }
    // All-Cyrillic "ор" beside Latin "op": one script, but it looks like an existing name.
    ok(&["append", s(&dir), "op", "--create"], "one\n");
    fails(
        &["append", s(&dir), "\u{43e}\u{440}", "--create"],
        "two\n",
        2,
        "look like an existing stream",
    );
    let listed = ok(&["inspect", s(&dir), "--json"], "");
    assert!(!listed.contains('\u{43e}'), "{listed}");
    assert!(!listed.contains('\u{200b}'), "{listed}");
    // One script, whatever it is, is fine.
    ok(&["append", s(&dir), "журнал", "--create"], "три\n");
    assert_eq!(ok(&["read", s(&dir), "журнал"], ""), "три\n");
}

#[test]
fn append_leaves_the_active_index_flushed() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    // Three batches (10,000 events each at most) in one run, then a second run: the process
    // ends without any close step, as a killed one does after its last batch.
    let input: String = (0..25_000).map(|i| format!("event {i}\n")).collect();
    ok(&["append", s(&dir), "audit", "--create"], &input);
    ok(&["append", s(&dir), "audit"], "one more\n");
    let store = kimberlite::Kimberlite::open(&dir).unwrap();
    let report = store.recovery_report();
    assert!(report.is_clean(), "{:?}", report.actions);
    assert_eq!(
        report.records_scanned, 0,
        "the next open rescanned the active segment"
    );
    let id = store.stream("audit").unwrap();
    assert_eq!(store.head(id).unwrap().next_offset.as_u64(), 25_001);
    drop(store);

    // bench --dir leaves its store the same way.
    let bench = temp.path().join("bench");
    ok(
        &[
            "bench",
            "--events",
            "500",
            "--batch",
            "50",
            "--dir",
            s(&bench),
        ],
        "",
    );
    let store = kimberlite::Kimberlite::open(&bench).unwrap();
    assert_eq!(store.recovery_report().records_scanned, 0);
}
