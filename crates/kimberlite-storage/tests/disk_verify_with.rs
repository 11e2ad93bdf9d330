//! `verify_stream_with` hands every event, once, in offset order, with its original payload
//! (decompressed), and never a restart record: on disk and in memory alike.

mod common;

use bytes::Bytes;
use common::{append_events, event, small_config};
use kimberlite_storage::{MemoryStorage, Storage, StorageConfig, StorageError};
use kimberlite_types::{CompressionKind, Offset, StreamId};

const STREAM: StreamId = StreamId::new(3);
const EVENTS: u64 = 700;

fn expected() -> Vec<(Offset, Bytes)> {
    (0..EVENTS)
        .map(|i| (Offset::new(i), event(STREAM.as_u64(), i)))
        .collect()
}

/// Runs `walk` with a callback that collects what it is handed.
fn collect<R>(walk: impl FnOnce(&mut dyn FnMut(Offset, &Bytes)) -> R) -> (R, Vec<(Offset, Bytes)>) {
    let mut handed = Vec::new();
    let result = walk(&mut |offset, payload| handed.push((offset, payload.clone())));
    (result, handed)
}

#[test]
fn the_disk_walk_hands_every_event_once_in_order() {
    for compression in [CompressionKind::None, CompressionKind::Lz4] {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            compression,
            ..small_config()
        };
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        append_events(&mut storage, STREAM, 0, EVENTS, 37, false);
        let (report, handed) = collect(|on_event| storage.verify_stream_with(STREAM, on_event));
        let report = report.unwrap();
        assert_eq!(handed, expected());
        assert_eq!(report.records_checked, EVENTS);
        assert!(report.restart_records_checked > 0 && report.segments_checked > 1);
        assert_eq!(report, storage.verify_stream(STREAM).unwrap());
    }
}

#[test]
fn the_memory_walk_hands_every_event_once_in_order() {
    let mut storage = MemoryStorage::new();
    append_events(&mut storage, STREAM, 0, EVENTS, 37, false);
    let (report, handed) = collect(|on_event| storage.verify_stream_with(STREAM, on_event));
    assert_eq!(handed, expected());
    assert_eq!(report.unwrap(), storage.verify_stream(STREAM).unwrap());
}

#[test]
fn a_damaged_stream_fails_the_walk_after_handing_only_intact_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    append_events(&mut storage, STREAM, 0, EVENTS, 37, true);
    let path = common::segment_file(dir.path(), STREAM, 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    drop(storage);

    let storage = Storage::open_with(dir.path(), small_config()).unwrap();
    let (result, handed) = collect(|on_event| storage.verify_stream_with(STREAM, on_event));
    let error = result.unwrap_err();
    assert!(
        matches!(error, StorageError::CorruptRecord { .. }),
        "{error}"
    );
    let failed_at = match error {
        StorageError::CorruptRecord { offset, .. } => offset.as_u64(),
        _ => unreachable!(),
    };
    assert_eq!(handed, expected()[..failed_at as usize]);
}
