//! Restart records: verified reads start at the nearest restart record at or before their
//! offset, check every link from there through one past the last record returned, and a full
//! verification checks every restart record. Records are rewritten here with *valid* CRCs (as
//! an attacker would), so only the chain can catch them.

mod common;

use common::{altered, append_events, frames, rewrite_frame, segment_file, small_config};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, StorageError, StoreBackend};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(8);

fn config() -> StorageConfig {
    StorageConfig {
        max_segment_size: u64::MAX,
        restart_interval: 8,
        ..small_config()
    }
}

fn store(dir: &std::path::Path) -> std::path::PathBuf {
    let mut storage = Storage::open_with(dir, config()).unwrap();
    append_events(&mut storage, STREAM, 0, 40, 5, false);
    assert_eq!(
        storage.stream_stats(STREAM).unwrap().restart_record_count,
        4
    );
    segment_file(dir, STREAM, 0)
}

/// Position of data record `offset` (or of the restart record at `offset`).
fn position_of(
    path: &std::path::Path,
    offset: u64,
    restart: bool,
) -> (usize, kimberlite_storage::Record) {
    frames(path)
        .into_iter()
        .find(|(_, record, _)| record.offset().as_u64() == offset && record.is_restart() == restart)
        .map(|(position, record, _)| (position, record))
        .unwrap()
}

#[test]
fn restart_records_sit_before_every_eighth_record_and_take_no_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path());
    let restart_records: Vec<u64> = frames(&path)
        .iter()
        .filter(|(_, record, _)| record.is_restart())
        .map(|(_, record, _)| record.offset().as_u64())
        .collect();
    assert_eq!(restart_records, vec![8, 16, 24, 32]);
    let data = frames(&path)
        .iter()
        .filter(|(_, r, _)| !r.is_restart())
        .count();
    assert_eq!(data, 40);
}

#[test]
fn a_read_after_a_restart_record_does_not_depend_on_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path());
    let (position, record) = position_of(&path, 3, false);
    rewrite_frame(&path, position, &altered(&record));
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    // Reads starting at or after restart record 8 never touch record 3.
    assert_eq!(
        storage
            .read_from(STREAM, Offset::new(8), u64::MAX)
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        storage.read_from(STREAM, Offset::new(20), 1).unwrap().len(),
        1
    );
    // A read that includes record 3 fails at the link after it.
    let error = storage
        .read_from(STREAM, Offset::new(0), u64::MAX)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::ChainVerificationFailed { offset, .. } if offset == Offset::new(4)),
        "{error}"
    );
    assert!(storage.verify_stream(STREAM).is_err());
}

#[test]
fn every_link_between_the_restart_record_and_the_target_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path());
    // Record 18 lies between restart record 16 and a read of offset 21.
    let (position, record) = position_of(&path, 18, false);
    rewrite_frame(&path, position, &altered(&record));
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    let error = storage
        .read_from(STREAM, Offset::new(21), u64::MAX)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::ChainVerificationFailed { offset, .. } if offset == Offset::new(19)),
        "{error}"
    );
}

#[test]
fn the_link_after_the_last_record_returned_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path());
    // Record 15 is the last before restart record 16: a one-event read of it must still fail.
    let (position, record) = position_of(&path, 15, false);
    rewrite_frame(&path, position, &altered(&record));
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    let error = storage.read_from(STREAM, Offset::new(15), 1).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    // And the very last record of the stream is checked against the head.
    drop(storage);
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path());
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    let (position, record) = position_of(&path, 39, false);
    rewrite_frame(&path, position, &altered(&record));
    let error = storage.read_from(STREAM, Offset::new(39), 1).unwrap_err();
    assert!(
        matches!(error, StorageError::ChainVerificationFailed { offset, .. } if offset == Offset::new(39)),
        "{error}"
    );
}

#[test]
fn a_forged_restart_record_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path());
    let (position, restart) = position_of(&path, 24, true);
    let (_, other) = position_of(&path, 16, true);
    // Same length, valid CRC, but repeating another head.
    let forged = kimberlite_storage::Record::with_compression(
        restart.offset(),
        other.prev_hash(),
        restart.kind(),
        restart.compression(),
        restart.payload().clone(),
    );
    rewrite_frame(&path, position, &forged);
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    assert!(storage
        .read_from(STREAM, Offset::new(25), u64::MAX)
        .is_err());
    assert!(storage
        .read_from(STREAM, Offset::new(20), u64::MAX)
        .is_err());
    assert!(storage.verify_stream(STREAM).is_err());
    assert_eq!(
        storage
            .read_from(STREAM, Offset::new(33), u64::MAX)
            .unwrap()
            .len(),
        7
    );
}
