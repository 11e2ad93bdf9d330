//! Manifests that disagree with the files: repaired from the files when that is unambiguous;
//! otherwise that stream is left unopened and untouched, every call on it fails with an error
//! naming the stream and file, and the store's other streams open as usual.

mod common;

use common::{append_events, event, read_all, reported, segment_file, small_config, stream_dir};
use kimberlite_storage::{RecoveryAction, Storage, StorageBackend, StorageError, StoreBackend};
use kimberlite_types::StreamId;

const STREAM: StreamId = StreamId::new(9);
/// A healthy stream beside it in every store here.
const NEIGHBOUR: StreamId = StreamId::new(4);
const COUNT: u64 = 40;

fn write_store(dir: &std::path::Path) -> usize {
    let mut storage = Storage::open_with(dir, small_config()).unwrap();
    append_events(&mut storage, STREAM, 0, COUNT, 4, false);
    append_events(&mut storage, NEIGHBOUR, 0, 10, 5, true);
    storage.segment_count(STREAM)
}

/// Every file under `dir`, with its bytes, in path order.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

/// Opens a store whose `STREAM` cannot be reconciled: the open succeeds, reports it, leaves
/// every byte of it as it was, refuses every call on it with the same `Unrecoverable` error
/// (returned), and serves `NEIGHBOUR` as usual.
fn open_refusing_stream(dir: &std::path::Path) -> StorageError {
    let before = snapshot(&stream_dir(dir, STREAM));
    let mut storage = Storage::open_with(dir, small_config()).unwrap();
    assert!(
        reported(&storage, |action| matches!(
            action,
            RecoveryAction::CorruptionFound { stream, .. } if *stream == STREAM
        )),
        "{:?}",
        storage.recovery_report()
    );
    assert!(storage.streams().contains(&STREAM));
    assert!(storage.holds(STREAM), "an unopened stream is held");
    assert!(storage.holds(NEIGHBOUR));
    assert!(
        !storage.holds(StreamId::new(77)),
        "an unknown stream is not"
    );
    let error = storage
        .read_from(STREAM, kimberlite_types::Offset::ZERO, u64::MAX)
        .unwrap_err();
    assert!(
        matches!(&error, StorageError::Unrecoverable { stream, .. } if *stream == STREAM),
        "{error}"
    );
    assert!(error.is_corruption());
    for other in [
        storage.latest_chain_hash(STREAM).unwrap_err(),
        storage.verify_stream(STREAM).unwrap_err(),
        storage
            .append_batch(STREAM, vec![event(9, 0)], 0.into(), None, true)
            .unwrap_err(),
    ] {
        assert_eq!(other.to_string(), error.to_string());
    }
    let neighbour: Vec<_> = (0..10).map(|i| event(4, i)).collect();
    assert_eq!(read_all(&mut storage, NEIGHBOUR, u64::MAX), neighbour);
    storage.verify_stream(NEIGHBOUR).unwrap();
    append_events(&mut storage, NEIGHBOUR, 10, 2, 2, true);
    drop(storage);
    assert_eq!(
        snapshot(&stream_dir(dir, STREAM)),
        before,
        "nothing of it changed"
    );
    error
}

fn manifest(dir: &std::path::Path) -> std::path::PathBuf {
    stream_dir(dir, STREAM).join("manifest.json")
}

fn assert_repaired_and_intact(dir: &std::path::Path, segments: usize) {
    let mut storage = Storage::open_with(dir, small_config()).unwrap();
    assert!(
        reported(&storage, |action| matches!(
            action,
            RecoveryAction::ManifestRepaired { .. }
        )),
        "{:?}",
        storage.recovery_report()
    );
    assert_eq!(storage.segment_count(STREAM), segments);
    let expected: Vec<_> = (0..COUNT).map(|i| event(9, i)).collect();
    assert_eq!(read_all(&mut storage, STREAM, 100), expected);
    storage.verify_stream(STREAM).unwrap();
    append_events(&mut storage, STREAM, COUNT, 3, 3, true);
    drop(storage);
    let storage = Storage::open_with(dir, small_config()).unwrap();
    assert!(
        storage.recovery_report().is_clean(),
        "{:?}",
        storage.recovery_report()
    );
}

#[test]
fn garbage_missing_or_foreign_manifests_are_rebuilt_from_the_files() {
    for damage in ["garbage", "missing", "foreign", "empty"] {
        let dir = tempfile::tempdir().unwrap();
        let segments = write_store(dir.path());
        let path = manifest(dir.path());
        match damage {
            "garbage" => std::fs::write(&path, b"{\"format_version\": 1, \"segm").unwrap(),
            "missing" => std::fs::remove_file(&path).unwrap(),
            "foreign" => {
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(&path, text.replace("\"stream_id\": 9", "\"stream_id\": 8"))
                    .unwrap();
            }
            _ => std::fs::write(&path, b"").unwrap(),
        }
        assert_repaired_and_intact(dir.path(), segments);
    }
}

#[test]
fn a_manifest_behind_a_rotation_is_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    append_events(&mut storage, STREAM, 0, COUNT - 4, 4, false);
    let before = storage.segment_count(STREAM);
    let old_manifest = std::fs::read(manifest(dir.path())).unwrap();
    let mut appended = COUNT - 4;
    while storage.segment_count(STREAM) == before {
        append_events(&mut storage, STREAM, appended, 1, 1, false);
        appended += 1;
    }
    drop(storage);
    // A crash between creating the new segment and renaming the new manifest.
    std::fs::write(manifest(dir.path()), old_manifest).unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    assert!(!storage.recovery_report().is_clean());
    assert_eq!(storage.segment_count(STREAM), before + 1);
    assert_eq!(read_all(&mut storage, STREAM, 100).len() as u64, appended);
}

#[test]
fn a_missing_listed_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_store(dir.path());
    let last = segment_file(dir.path(), STREAM, (segments - 1) as u32);
    std::fs::remove_file(&last).unwrap();
    let error = open_refusing_stream(dir.path());
    assert!(
        matches!(&error, StorageError::Unrecoverable { stream, path, .. }
            if *stream == STREAM && *path == last),
        "{error}"
    );
}

#[test]
fn a_gap_in_segment_numbers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    std::fs::remove_file(segment_file(dir.path(), STREAM, 1)).unwrap();
    std::fs::remove_file(manifest(dir.path())).unwrap();
    let error = open_refusing_stream(dir.path());
    assert!(
        matches!(error, StorageError::Unrecoverable { .. }),
        "{error}"
    );
}

#[test]
fn no_manifest_and_a_damaged_completed_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let path = segment_file(dir.path(), STREAM, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[60] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    std::fs::remove_file(manifest(dir.path())).unwrap();
    let error = open_refusing_stream(dir.path());
    assert!(
        matches!(&error, StorageError::Unrecoverable { path: p, .. } if *p == path),
        "{error}"
    );
}

#[test]
fn a_completed_segment_of_the_wrong_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let path = segment_file(dir.path(), STREAM, 0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"extra");
    std::fs::write(&path, bytes).unwrap();
    let error = open_refusing_stream(dir.path());
    assert!(error.to_string().contains("manifest says"), "{error}");
}

/// A segment file of another stream put in place of one of this stream's: the stream is left
/// unopened, and the error says in words which header was found and which belongs there.
#[test]
fn a_foreign_segment_is_refused_and_told_in_words() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    std::fs::copy(
        segment_file(dir.path(), NEIGHBOUR, 0),
        segment_file(dir.path(), STREAM, 0),
    )
    .unwrap();
    let error = open_refusing_stream(dir.path()).to_string();
    assert!(
        error.contains("the segment header says stream 4, segment 0, first offset 0 where stream 9, segment 0, first offset 0 belongs"),
        "{error}"
    );
}
