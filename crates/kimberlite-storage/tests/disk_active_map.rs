//! Reads of the active segment go through a map made ahead of its end (`ActiveMap`): what
//! was appended after the map was made must be read, never a byte past what was written, and
//! damage must still be reported, not returned.

mod common;

use std::io::{Seek, SeekFrom, Write};

use bytes::Bytes;
use common::{append_events, event, read_all, segment_file};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, StorageError};
use kimberlite_types::{CompressionKind, Offset, StreamId};

const STREAM: StreamId = StreamId::new(1);

/// One large segment (no rotation in these tests unless asked), restart records and an index
/// often, all reads on one thread or split.
fn config(max_segment_size: u64, verify_threads: usize) -> StorageConfig {
    StorageConfig {
        max_segment_size,
        restart_interval: 4,
        compression: CompressionKind::None,
        index_interval: 2,
        verify_threads,
        hash_ahead: true,
    }
}

fn expected(count: u64) -> Vec<Bytes> {
    (0..count).map(|i| event(STREAM.as_u64(), i)).collect()
}

#[test]
fn reads_see_appends_made_after_the_active_segment_was_mapped() {
    for verify_threads in [1, 4] {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = Storage::open_with(dir.path(), config(1 << 20, verify_threads)).unwrap();
        let mut written = 0;
        for batch in [1, 7, 300, 2, 1_000] {
            append_events(&mut storage, STREAM, written, batch, batch, false);
            written += batch;
            // Every read maps (the first) or reuses the map, then sees exactly what is written.
            assert_eq!(read_all(&mut storage, STREAM, u64::MAX), expected(written));
            let tail = storage
                .read_from(STREAM, Offset::new(written - 1), u64::MAX)
                .unwrap();
            assert_eq!(tail, expected(written)[written as usize - 1..]);
            assert!(storage
                .read_from(STREAM, Offset::new(written), u64::MAX)
                .unwrap()
                .is_empty());
        }
        assert_eq!(
            storage.verify_stream(STREAM).unwrap().records_checked,
            written
        );
    }
}

#[test]
fn reads_across_rotations_map_each_new_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), config(4_096, 4)).unwrap();
    let mut written = 0;
    for round in 1..=40 {
        append_events(&mut storage, STREAM, written, round, 8, false);
        written += round;
        assert_eq!(read_all(&mut storage, STREAM, 2_000), expected(written));
    }
    assert!(segment_file(dir.path(), STREAM, 10).exists());
    drop(storage);
    let mut reopened = Storage::open_with(dir.path(), config(4_096, 4)).unwrap();
    assert_eq!(read_all(&mut reopened, STREAM, u64::MAX), expected(written));
}

/// A byte of the active segment changed on disk after the map was made is seen through the
/// map (it shares the page cache with the file) and reported with its offset.
#[test]
fn a_byte_changed_under_the_map_is_reported_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), config(1 << 20, 4)).unwrap();
    append_events(&mut storage, STREAM, 0, 500, 500, true);
    assert_eq!(read_all(&mut storage, STREAM, u64::MAX), expected(500));

    let path = segment_file(dir.path(), STREAM, 0);
    let length = std::fs::metadata(&path).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // A payload byte of one of the last records.
    file.seek(SeekFrom::Start(length - 60)).unwrap();
    file.write_all(b"#").unwrap();
    drop(file);

    let error = storage
        .read_from(STREAM, Offset::ZERO, u64::MAX)
        .unwrap_err();
    assert!(error.is_corruption(), "{error}");
    match error {
        StorageError::CorruptRecord { stream, offset, .. } => {
            assert_eq!(stream, STREAM);
            assert!(offset.as_u64() >= 490, "offset {offset}");
        }
        other => panic!("expected a corrupt record, got {other}"),
    }
}
