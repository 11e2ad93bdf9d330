//! Links and unexpected entries inside a store (SPEC.md section 7): never followed, never
//! written through; refused as damage that names the path. Each test places a link where the
//! store keeps a file or a directory, pointing outside the store, and checks that nothing
//! outside changed and that the store says what it refused.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{append_events, index_file, segment_file, small_config, snapshot, stream_dir};
use kimberlite_storage::{RecoveryAction, Storage, StorageBackend, StorageError, StoreBackend};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(1);

/// A store with `count` events of `STREAM` (two segments or more), and a directory outside it.
fn store(count: u64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let mut storage = Storage::open_with(&dir, small_config()).unwrap();
    append_events(&mut storage, STREAM, 0, count, 3, true);
    assert!(storage.segment_count(STREAM) >= 2);
    (root, dir, outside)
}

fn active_segment(dir: &Path) -> PathBuf {
    let storage = Storage::open_with(dir, small_config()).unwrap();
    let last = u32::try_from(storage.segment_count(STREAM) - 1).unwrap();
    drop(storage);
    segment_file(dir, STREAM, last)
}

/// Moves `path` outside (to `outside/<name>`) and leaves a link to it in its place.
fn replace_with_link(path: &Path, outside: &Path) -> PathBuf {
    let target = outside.join(path.file_name().unwrap());
    std::fs::rename(path, &target).unwrap();
    symlink(&target, path).unwrap();
    target
}

/// Cuts the last record of the segment at `path` short (an unfinished write); its new bytes.
fn tear(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(bytes.len() - 5);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Whether `text` names a refused link at `path`.
fn names_link(text: &str, path: &Path) -> bool {
    text.contains(&path.display().to_string()) && text.contains("symbolic link")
}

/// The error reads of `STREAM` give, as text.
fn read_error(storage: &Storage) -> String {
    let error = storage
        .read_from(STREAM, Offset::new(0), 1 << 20)
        .expect_err("the stream behind a link must not be read");
    assert!(error.is_corruption(), "{error}");
    error.to_string()
}

#[test]
fn a_linked_active_segment_is_never_cut_nor_read() {
    let (_root, dir, outside) = store(40);
    let active = active_segment(&dir);
    let target = replace_with_link(&active, &outside);
    // A torn tail in the outside file: recovery would cut it, through the link.
    tear(&target);
    let before = snapshot(&outside);

    let storage = Storage::open_with(&dir, small_config()).unwrap();
    assert!(names_link(&read_error(&storage), &active));
    drop(storage);
    assert_eq!(snapshot(&outside), before, "the outside file was written");
}

#[test]
fn a_linked_torn_directory_receives_nothing() {
    let (_root, dir, outside) = store(40);
    let torn = stream_dir(&dir, STREAM).join(kimberlite_storage::disk::TORN_DIR);
    symlink(&outside, &torn).unwrap();
    let active = active_segment(&dir);
    let bytes = tear(&active);

    let error = Storage::open_with(&dir, small_config()).map(|storage| read_error(&storage));
    let text = match error {
        Ok(text) => text,
        Err(error) => error.to_string(),
    };
    assert!(names_link(&text, &torn), "{text}");
    assert!(
        snapshot(&outside).is_empty(),
        "a torn tail was kept outside"
    );
    assert_eq!(std::fs::read(&active).unwrap(), bytes, "cut without a copy");
}

#[test]
fn a_linked_stream_directory_is_refused_and_never_written() {
    let (_root, dir, outside) = store(40);
    let stream = stream_dir(&dir, STREAM);
    let target = outside.join("stream");
    std::fs::rename(&stream, &target).unwrap();
    symlink(&target, &stream).unwrap();
    let before = snapshot(&outside);

    let mut storage = Storage::open_with(&dir, small_config()).unwrap();
    assert!(names_link(&read_error(&storage), &stream));
    let refused = storage.append_batch(
        STREAM,
        vec![bytes::Bytes::from_static(b"x")],
        Offset::new(40),
        None,
        true,
    );
    assert!(refused.is_err());
    drop(storage);
    assert_eq!(snapshot(&outside), before, "written through the link");
}

#[test]
fn a_linked_streams_directory_is_refused() {
    let (_root, dir, outside) = store(40);
    let streams = dir.join(kimberlite_storage::disk::STREAMS_DIR);
    let target = outside.join("streams");
    std::fs::rename(&streams, &target).unwrap();
    symlink(&target, &streams).unwrap();
    let before = snapshot(&outside);
    match Storage::open_with(&dir, small_config()) {
        Err(StorageError::UnexpectedEntry(entry)) => assert_eq!(entry.path, streams),
        other => panic!("expected the link refused, got {:?}", other.map(|_| ())),
    }
    assert_eq!(snapshot(&outside), before);
}

#[test]
fn a_linked_manifest_is_never_read_nor_written() {
    let (_root, dir, outside) = store(40);
    let manifest = stream_dir(&dir, StreamId::new(1)).join("manifest.json");
    let target = replace_with_link(&manifest, &outside);
    let before = snapshot(&outside);
    let storage = Storage::open_with(&dir, small_config());
    let text = match storage {
        Ok(storage) => {
            let report = storage.recovery_report().to_string();
            format!(
                "{report} {:?}",
                storage.read_from(STREAM, Offset::new(0), 1 << 20).err()
            )
        }
        Err(error) => error.to_string(),
    };
    assert!(names_link(&text, &manifest), "{text}");
    assert_eq!(snapshot(&outside), before);
    assert!(target.exists());
}

#[test]
fn a_linked_index_is_never_read_nor_written() {
    let (_root, dir, outside) = store(40);
    let index = index_file(&dir, STREAM, 0);
    let target = replace_with_link(&index, &outside);
    let before = snapshot(&outside);

    let mut storage = Storage::open_with(&dir, small_config()).unwrap();
    let rebuilt = storage.recovery_report().actions.iter().any(|action| {
        matches!(action, RecoveryAction::IndexRebuilt { reason, .. } if names_link(reason, &index))
    });
    assert!(rebuilt, "{}", storage.recovery_report());
    // A temp file name the store writes, linked: creating it must not truncate the target.
    let victim = outside.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let last = u32::try_from(storage.segment_count(STREAM) - 1).unwrap();
    let temp = stream_dir(&dir, STREAM).join(format!("{last:08}.idx.tmp"));
    symlink(&victim, &temp).unwrap();
    let before_flush = snapshot(&outside);
    let flushed = storage.flush_indexes();
    assert!(flushed.is_err(), "the index was written through a link");
    assert_eq!(snapshot(&outside), before_flush, "written through a link");
    std::fs::remove_file(&victim).unwrap();
    drop(storage);
    assert_eq!(snapshot(&outside), before, "written through a link");
    assert!(target.exists());
}

/// A directory where a completed segment's index belongs: open rebuilds the index and cannot
/// write it there. That is damage to name (it failed the whole open as a bare I/O error).
#[test]
fn a_directory_in_place_of_an_index_is_damage_not_an_io_failure() {
    let (_root, dir, _outside) = store(40);
    let index = index_file(&dir, STREAM, 0);
    std::fs::remove_file(&index).unwrap();
    std::fs::create_dir(&index).unwrap();

    let said = match Storage::open_with(&dir, small_config()) {
        Ok(storage) => format!("{} {}", storage.recovery_report(), read_error(&storage)),
        Err(error) => {
            assert!(error.is_corruption(), "{error}");
            error.to_string()
        }
    };
    assert!(said.contains(&index.display().to_string()), "{said}");
    assert!(said.contains("a directory"), "{said}");
}

/// A linked `torn/` with no tail to keep: the open has nothing to write there, and reports
/// the link all the same (it went unmentioned).
#[test]
fn a_linked_torn_directory_is_reported_when_nothing_is_cut() {
    let (_root, dir, outside) = store(40);
    let torn = stream_dir(&dir, STREAM).join(kimberlite_storage::disk::TORN_DIR);
    symlink(&outside, &torn).unwrap();

    let storage = Storage::open_with(&dir, small_config()).unwrap();
    let reported =
        storage.recovery_report().actions.iter().any(
            |action| matches!(action, RecoveryAction::UnexpectedEntry { path } if *path == torn),
        );
    assert!(reported, "{}", storage.recovery_report());
    assert!(snapshot(&outside).is_empty());
}

/// The active segment's index is read for its resume point only; a link there was taken
/// quietly for a missing index. It is reported as a completed segment's is.
#[test]
fn a_linked_active_index_is_reported() {
    let (_root, dir, outside) = store(40);
    let active = active_segment(&dir);
    let index = active.with_extension("idx");
    let victim = outside.join("victim.idx");
    std::fs::write(&victim, b"precious").unwrap();
    let _ = std::fs::remove_file(&index);
    symlink(&victim, &index).unwrap();

    let storage = Storage::open_with(&dir, small_config()).unwrap();
    let reported = storage.recovery_report().actions.iter().any(|action| {
        matches!(action, RecoveryAction::IndexRebuilt { reason, .. } if names_link(reason, &index))
    });
    assert!(reported, "{}", storage.recovery_report());
    drop(storage);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn special_files_are_refused_not_opened() {
    let (_root, dir, _outside) = store(40);
    let active = active_segment(&dir);
    std::fs::remove_file(&active).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&active)
        .status()
        .unwrap();
    assert!(status.success());
    // Opening a fifo for reading would block: the store must refuse it unopened.
    let storage = Storage::open_with(&dir, small_config()).unwrap();
    let text = read_error(&storage);
    assert!(
        text.contains(&active.display().to_string()) && text.contains("fifo"),
        "{text}"
    );
}

#[test]
fn entries_with_names_that_are_not_utf8_are_listed_and_reported() {
    use std::os::unix::ffi::OsStrExt;
    let (_root, dir, _outside) = store(40);
    let streams = dir.join(kimberlite_storage::disk::STREAMS_DIR);
    let name = std::ffi::OsStr::from_bytes(b"\xff\xfe-not-utf8");
    std::fs::write(streams.join(name), b"x").unwrap();
    let storage = Storage::open_with(&dir, small_config()).unwrap();
    let reported = storage
        .recovery_report()
        .actions
        .iter()
        .any(|action| matches!(action, RecoveryAction::UnexpectedEntry { .. }));
    assert!(reported, "{}", storage.recovery_report());
}
