//! Files of another format version are refused or reported, never repaired away: opening a
//! store must not change a byte of what it cannot read.

mod common;

use common::{append_events, segment_file, small_config};
use kimberlite_storage::{RecordError, Storage, StorageBackend, StorageError, StoreBackend};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(1);

/// A store of 10 events in one segment, its indexes flushed; returns the segment's path.
fn write_store(dir: &std::path::Path) -> std::path::PathBuf {
    let config = small_config();
    let mut storage = Storage::open_with(
        dir,
        kimberlite_storage::StorageConfig {
            max_segment_size: 1 << 20,
            restart_interval: 0,
            ..config
        },
    )
    .unwrap();
    append_events(&mut storage, STREAM, 0, 10, 10, true);
    drop(storage);
    segment_file(dir, STREAM, 0)
}

/// The last frame of a segment whose frames hold the 10 events above, as (start, len).
fn last_frame(bytes: &[u8]) -> (usize, usize) {
    let mut at = 40;
    loop {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if at + len == bytes.len() {
            return (at, len);
        }
        at += len;
    }
}

/// The last record rewritten as another record format version, its CRC made valid again: a
/// whole frame this build cannot read. (Before the fix, recovery cut it off as a torn write.)
#[test]
fn a_whole_frame_of_another_version_is_reported_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_store(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let (start, len) = last_frame(&bytes);
    bytes[start + 4] = 2;
    let crc = crc32c::crc32c(&bytes[start..start + len - 4]);
    bytes[start + len - 4..start + len].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let storage = Storage::open_with(dir.path(), small_config()).unwrap();
    assert_eq!(storage.recovery_report().truncations().count(), 0);
    let error = storage
        .read_from(STREAM, Offset::ZERO, u64::MAX)
        .unwrap_err();
    assert!(
        matches!(
            &error,
            StorageError::CorruptRecord { offset, source: RecordError::UnsupportedVersion(2), .. }
                if *offset == Offset::new(9)
        ),
        "{error}"
    );
    drop(storage);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "not a byte changed");
}

/// A segment header of an older format (version 1): the store is refused with the reason,
/// and nothing is changed.
#[test]
fn a_segment_of_another_version_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_store(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..36]);
    bytes[36..40].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let Err(error) = Storage::open_with(dir.path(), small_config()) else {
        panic!("a segment of version 1 opened");
    };
    assert!(
        matches!(&error, StorageError::UnsupportedFormat { path: p, found: 1, supported: 2, .. }
            if p.ends_with("00000000000000000001/00000000.seg")),
        "{error}"
    );
    assert!(
        !error.is_corruption(),
        "another version's file is not damage"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "not a byte changed");
}
