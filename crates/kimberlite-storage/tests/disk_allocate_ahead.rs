//! Blocks allocated ahead of a segment's writes (`allocate_ahead`, Linux `fallocate` with
//! `KEEP_SIZE`) change neither a file's length nor its bytes, and a completed segment gives
//! back what it did not fill.
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bytes::Bytes;
use common::{read_all, segment_file};
use kimberlite_storage::{
    FileHandle, FileSystem, OsFileSystem, Storage, StorageBackend, StorageConfig, StoreBackend,
};
use kimberlite_types::{CompressionKind, StreamId};

const STREAM: StreamId = StreamId::new(3);

/// Bytes of disk the file takes (`st_blocks` counts 512-byte units).
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn allocating_ahead_keeps_the_length_and_the_bytes_and_release_gives_the_blocks_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let fs = OsFileSystem;
    let mut file = fs.create(&path).unwrap();
    file.write_all_at(b"kept", 0).unwrap();
    file.allocate_ahead(4, 8 << 20);
    file.sync_data().unwrap();
    assert_eq!(file.len_bytes().unwrap(), 4);
    assert_eq!(std::fs::read(&path).unwrap(), b"kept");
    assert!(allocated(&path) >= 8 << 20, "{} bytes", allocated(&path));
    // Writes land in the allocated blocks and the length follows them, not the allocation.
    file.write_all_at(&[7; 10_000], 4).unwrap();
    assert_eq!(file.len_bytes().unwrap(), 10_004);
    file.release_ahead();
    assert_eq!(file.len_bytes().unwrap(), 10_004);
    assert!(allocated(&path) <= 16 << 10, "{} bytes", allocated(&path));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..4], b"kept");
    assert!(bytes[4..].iter().all(|b| *b == 7));
    // An empty or reversed range is nothing to do.
    file.allocate_ahead(100, 100);
    file.allocate_ahead(100, 50);
    assert_eq!(file.len_bytes().unwrap(), 10_004);
}

/// Event `i`: 400 bytes that LZ4 shrinks to about a tenth, so a segment's file ends far
/// below its logical size limit (what the allocation ahead is capped at).
fn compressible(i: u64) -> Bytes {
    let text = format!("{{\"event\":{i},\"ward\":\"{}\"}}", "a".repeat(360));
    Bytes::from(format!("{text:<400}"))
}

fn append(storage: &mut Storage, from: u64, count: u64, fsync: bool) {
    for start in (from..from + count).step_by(1_000) {
        let end = (start + 1_000).min(from + count);
        let head = storage.latest_chain_hash(STREAM).unwrap();
        let events = (start..end).map(compressible).collect();
        storage
            .append_batch(STREAM, events, start.into(), head, fsync)
            .unwrap();
    }
}

#[test]
fn a_large_segment_is_allocated_ahead_and_gives_the_rest_back_when_completed() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        max_segment_size: 32 << 20,
        compression: CompressionKind::Lz4,
        ..StorageConfig::default()
    };
    let mut storage = Storage::open_with(dir.path(), config).unwrap();
    // 20,000 x 400 B = 8 MB logical, a few MB stored: past the size from which blocks are
    // allocated ahead, all in segment 0.
    append(&mut storage, 0, 20_000, false);
    let active = segment_file(dir.path(), STREAM, 0);
    let len = std::fs::metadata(&active).unwrap().len();
    assert!(len > 1 << 20 && len < 8 << 20, "{len}");
    // At least one block more than the file's own (rounded up to 4 KiB blocks).
    assert!(
        allocated(&active) > len.next_multiple_of(4096),
        "allocated {} for {len} bytes",
        allocated(&active)
    );
    // Past 32 MiB logical: segment 0 is completed and keeps only its own blocks.
    append(&mut storage, 20_000, 70_000, true);
    let written = 90_000;
    assert!(segment_file(dir.path(), STREAM, 1).exists());
    let completed_len = std::fs::metadata(&active).unwrap().len();
    assert!(
        allocated(&active) < completed_len + (64 << 10),
        "allocated {} for {completed_len} bytes",
        allocated(&active)
    );
    let expected: Vec<_> = (0..written).map(compressible).collect();
    assert_eq!(read_all(&mut storage, STREAM, 1 << 20), expected);
    drop(storage);
    // Reopened with blocks still allocated past the active segment's end: clean.
    let mut storage = Storage::open_with(dir.path(), config).unwrap();
    assert!(storage.recovery_report().is_clean());
    assert_eq!(read_all(&mut storage, STREAM, 1 << 20), expected);
    append(&mut storage, written, 1_000, true);
    assert_eq!(
        storage.verify_stream(STREAM).unwrap().records_checked,
        written + 1_000
    );
}
