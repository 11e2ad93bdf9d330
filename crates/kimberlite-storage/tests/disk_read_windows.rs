//! Reads of the active segment through `pread` windows (a file system that does not map
//! growing files, as the simulator's) return exactly what reads through the map return:
//! frames that straddle window boundaries, many windows per read, several verify threads,
//! and a damaged byte reported at the same record.

#[macro_use]
mod common;

use std::io;
use std::path::Path;

use bytes::Bytes;
use kimberlite_storage::disk::OsFile;
use kimberlite_storage::{
    FileSystem, OsFileSystem, Storage, StorageBackend, StorageConfig, StorageError,
};
use kimberlite_types::{CompressionKind, Offset, StreamId};

const STREAM: StreamId = StreamId::new(9);

/// The OS file system, without maps of growing files: the active segment is read in windows.
#[derive(Clone, Copy, Default)]
struct WindowsOnly;

impl FileSystem for WindowsOnly {
    type File = OsFile;
    type Lock = <OsFileSystem as FileSystem>::Lock;

    fn open(&self, path: &Path) -> io::Result<OsFile> {
        OsFileSystem.open(path)
    }
    fn create(&self, path: &Path) -> io::Result<OsFile> {
        OsFileSystem.create(path)
    }
    os_file_system_passthrough!();
}

fn config(verify_threads: usize) -> StorageConfig {
    StorageConfig {
        max_segment_size: 64 << 20,
        restart_interval: 16,
        compression: CompressionKind::None,
        index_interval: 8,
        verify_threads,
        hash_ahead: true,
    }
}

/// Event `i`: from a few bytes to ~24 KiB, so frames fall across 64 KiB windows.
fn event(i: u64) -> Bytes {
    let len = match i % 7 {
        0 => 24_000 + (i % 100) as usize,
        1 | 2 => 3_000 + (i % 500) as usize,
        _ => 1 + (i % 300) as usize,
    };
    Bytes::from(vec![(i % 251) as u8; len])
}

/// Appends 2,000 events (about 10 MB, one active segment) in uneven batches.
fn build(dir: &Path) {
    let mut storage = Storage::open_with(dir, config(1)).unwrap();
    let mut next = 0;
    for batch in [1_u64, 300, 7, 900, 792] {
        let head = storage.latest_chain_hash(STREAM).unwrap();
        let events = (next..next + batch).map(event).collect();
        storage
            .append_batch(STREAM, events, Offset::new(next), head, true)
            .unwrap();
        next += batch;
    }
}

/// Reads from `from` with budget `max_bytes`, through windows and through the map.
fn both_ways(dir: &Path, threads: usize, from: u64, max_bytes: u64) -> [Vec<Bytes>; 2] {
    let windows = Storage::open_on(WindowsOnly, dir, config(threads))
        .unwrap()
        .read_from(STREAM, Offset::new(from), max_bytes)
        .unwrap();
    let mapped = Storage::open_with(dir, config(threads))
        .unwrap()
        .read_from(STREAM, Offset::new(from), max_bytes)
        .unwrap();
    [windows, mapped]
}

#[test]
fn window_reads_equal_map_reads_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    for threads in [1, 4] {
        for (from, max_bytes) in [
            (0, u64::MAX),
            (1, 70_000),
            (999, 1),
            (1_500, 5_000_000),
            (1_999, 10),
        ] {
            let [windows, mapped] = both_ways(dir.path(), threads, from, max_bytes);
            assert!(!windows.is_empty());
            assert_eq!(windows, mapped, "{threads} threads from {from}");
            let expected: Vec<_> = (from..from + windows.len() as u64).map(event).collect();
            assert_eq!(windows, expected, "{threads} threads from {from}");
        }
    }
    let mut storage = Storage::open_on(WindowsOnly, dir.path(), config(4)).unwrap();
    assert_eq!(
        storage.verify_stream(STREAM).unwrap().records_checked,
        2_000
    );
}

#[test]
fn a_damaged_byte_is_reported_at_the_same_record_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let path = dir
        .path()
        .join("streams")
        .join(format!("{:020}", STREAM.as_u64()))
        .join("00000000.seg");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let offset_of = |error: StorageError| match error {
        StorageError::CorruptRecord { offset, .. }
        | StorageError::ChainVerificationFailed { offset, .. } => offset,
        other => panic!("expected corruption, got {other}"),
    };
    for threads in [1, 4] {
        let through_windows = Storage::open_on(WindowsOnly, dir.path(), config(threads))
            .unwrap()
            .read_from(STREAM, Offset::ZERO, u64::MAX)
            .unwrap_err();
        let through_map = Storage::open_with(dir.path(), config(threads))
            .unwrap()
            .read_from(STREAM, Offset::ZERO, u64::MAX)
            .unwrap_err();
        assert!(through_windows.is_corruption(), "{through_windows}");
        assert_eq!(
            offset_of(through_windows),
            offset_of(through_map),
            "{threads} threads"
        );
    }
}
