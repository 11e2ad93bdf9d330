//! Read-only commands (`verify`, `read`, `inspect`, `prove`, `audit`, `tail`) change nothing:
//! every file of the store (names and bytes) is the same before and after each, on a clean
//! store, on one that needs recovery (a torn tail) and on one with its indexes gone; and they
//! run beside a live writer (issue 22 point 4; SPEC.md section 7).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{finish_tail, ok, run, s, segments, spawn_tail, store_with};

/// Every entry under `dir` (files with their bytes, directories as `None`), by path.
fn image(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(path.clone(), None);
                stack.push(path);
            } else {
                out.insert(path.clone(), Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// Runs each read-only command on `dir` and checks that nothing under `root` changed.
fn each_command_changes_nothing(root: &Path, dir: &Path, key: &Path, checkpoint: &Path) {
    let pubkey = key.with_extension("key.pub");
    let commands: Vec<Vec<&str>> = vec![
        vec!["verify", s(dir)],
        vec!["verify", s(dir), "--json"],
        vec!["read", s(dir), "audit"],
        vec!["inspect", s(dir)],
        vec!["prove", s(dir), "audit", "0"],
        vec![
            "tail",
            s(dir),
            "audit",
            "--from",
            "0",
            "--polls",
            "2",
            "--interval-ms",
            "0",
        ],
        vec![
            "audit",
            s(dir),
            "--checkpoint",
            s(checkpoint),
            "--pubkey",
            s(&pubkey),
        ],
    ];
    for args in commands {
        let before = image(root);
        let ran = run(&args, "");
        assert!(!ran.stderr.contains("panicked"), "{args:?}: {}", ran.stderr);
        assert_eq!(
            image(root),
            before,
            "{args:?} changed the store\n{}",
            ran.stderr
        );
    }
}

/// A store of 30 events, a key and a checkpoint of `audit` (kept outside the store).
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let (temp, dir) = store_with(30);
    let key = temp.path().join("k.key");
    ok(&["keygen", "--name", "k", "--out", s(&key)], "");
    let note = ok(&["checkpoint", s(&dir), "audit", "--key", s(&key)], "");
    let checkpoint = temp.path().join("audit.checkpoint");
    std::fs::write(&checkpoint, note).unwrap();
    (temp, dir, key, checkpoint)
}

#[test]
fn read_only_commands_change_nothing_on_a_clean_store() {
    let (temp, dir, key, checkpoint) = setup();
    each_command_changes_nothing(temp.path(), &dir, &key, &checkpoint);
}

#[test]
fn read_only_commands_change_nothing_on_a_store_that_needs_recovery() {
    let (temp, dir, key, checkpoint) = setup();
    let mut files = Vec::new();
    segments(&dir, &mut files);
    files.sort();
    let active = files.last().unwrap();
    // A torn write past the last acknowledged event: a frame's length prefix (200 bytes) and
    // the first bytes of its header, the rest never written. Cutting into an acknowledged
    // event instead would be lost data, which the kept checkpoint and Merkle leaves report.
    let mut bytes = std::fs::read(active).unwrap();
    bytes.extend_from_slice(&200u32.to_le_bytes());
    bytes.extend_from_slice(&[3u8; 20]);
    std::fs::write(active, &bytes).unwrap();
    let said = ok(&["verify", s(&dir)], "");
    assert!(said.contains("would"), "{said}");
    each_command_changes_nothing(temp.path(), &dir, &key, &checkpoint);
}

#[test]
fn read_only_commands_change_nothing_when_indexes_are_missing() {
    let (temp, dir, key, checkpoint) = setup();
    // More events in small segments, so that completed segments have indexes to lose.
    {
        let config = kimberlite::Config::default().max_segment_size(1024);
        let store = kimberlite::Kimberlite::open_with(&dir, config).unwrap();
        let id = store.stream("audit").unwrap();
        let events: Vec<String> = (0..200).map(|i| format!("more-{i}")).collect();
        store
            .append(id, events, kimberlite::ExpectedOffset::Any)
            .unwrap();
        store.sync().unwrap();
    }
    let mut removed = 0;
    for stream in std::fs::read_dir(dir.join("streams")).unwrap() {
        for file in std::fs::read_dir(stream.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "idx") {
                std::fs::remove_file(path).unwrap();
                removed += 1;
            }
        }
    }
    assert!(removed > 0);
    each_command_changes_nothing(temp.path(), &dir, &key, &checkpoint);
}

#[test]
fn verify_and_tail_run_beside_a_writer_and_do_not_starve_it() {
    let (_temp, dir) = store_with(5);
    let tail = spawn_tail(&dir, 0, 400);
    // The writer holds the store open (its lock) and appends, while readers look.
    let store = kimberlite::Kimberlite::open(&dir).unwrap();
    let id = store.stream("audit").unwrap();
    for i in 0..50 {
        store
            .append(id, [format!("beside-{i}")], kimberlite::ExpectedOffset::Any)
            .unwrap();
        if i % 10 == 0 {
            let said = ok(&["verify", s(&dir)], "");
            assert!(said.contains("intact"), "{said}");
        }
    }
    store.sync().unwrap();
    // What tail printed is a prefix of the stream, in order.
    let printed = finish_tail(tail);
    let events: Vec<String> = store
        .events(id, kimberlite::Offset::new(0))
        .map(|event| String::from_utf8(event.unwrap().payload.to_vec()).unwrap())
        .collect();
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines.len() >= 5, "{printed}");
    assert!(lines.len() <= events.len());
    for (line, event) in lines.iter().zip(&events) {
        assert_eq!(*line, event);
    }
}

#[test]
fn checkpoint_never_writes_through_a_linked_checkpoints_directory() {
    let (temp, dir) = store_with(3);
    let key = temp.path().join("k.key");
    ok(&["keygen", "--name", "k", "--out", s(&key)], "");
    let outside = temp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("checkpoints")).unwrap();
    let ran = run(&["checkpoint", s(&dir), "audit", "--key", s(&key)], "");
    assert_ne!(ran.code, 0, "{}", ran.stdout);
    assert!(ran.stderr.contains("symbolic link"), "{}", ran.stderr);
    assert!(
        image(&outside).is_empty(),
        "a checkpoint was stored outside the store"
    );
}
