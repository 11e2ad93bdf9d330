//! Verified reads and verifications split across threads (`verify_threads`) report exactly
//! what a one-thread walk reports: the same error variant, stream, offset and location for
//! the first damaged record in offset order, wherever it falls (in the middle of a long read,
//! at the boundary between two threads' blocks, in a completed or the active segment), and
//! the same payloads when nothing is damaged.

use std::path::Path;

use bytes::Bytes;
use kimberlite_storage::RECORD_HEADER_LEN;
use kimberlite_storage::VERIFY_BLOCK_FRAMES as BLOCK_FRAMES;
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, StorageError, StoreBackend};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(5);
const COUNT: u64 = 3_000;
/// Where `prev_hash` sits in a frame, counted back from its end: the hash (32) and the CRC (4).
const PREV_HASH_FROM_END: usize = 36;

fn event(i: u64) -> Bytes {
    let mut text = format!("event-{i:08}-").into_bytes();
    text.resize(100, b'.');
    Bytes::from(text)
}

fn config(threads: usize) -> StorageConfig {
    StorageConfig {
        // About 1,300 events per segment: segment 0 is completed (mapped), 2 is active.
        max_segment_size: 200_000,
        restart_interval: 256,
        verify_threads: threads,
        ..StorageConfig::default()
    }
}

fn build(dir: &Path) {
    let mut storage = Storage::open_with(dir, config(1)).unwrap();
    let mut head = None;
    for start in (0..COUNT).step_by(500) {
        let events = (start..start + 500).map(event).collect();
        let (_, hash) = storage
            .append_batch(STREAM, events, Offset::new(start), head, false)
            .unwrap();
        head = Some(hash);
    }
    storage.flush().unwrap();
}

/// The segment file holding event `i` and the byte position of its frame.
fn frame_of(dir: &Path, i: u64) -> (std::path::PathBuf, usize) {
    let needle = event(i);
    for entry in walk_files(dir) {
        if entry.extension().is_some_and(|ext| ext == "seg") {
            let bytes = std::fs::read(&entry).unwrap();
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == &needle[..]) {
                return (entry, at - RECORD_HEADER_LEN);
            }
        }
    }
    panic!("event {i} not found");
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

enum Damage {
    /// A payload byte flipped: the frame fails its CRC (`CorruptRecord`).
    Crc,
    /// A `prev_hash` byte flipped and the CRC recomputed: the frame decodes, its link is
    /// wrong (`ChainVerificationFailed`).
    Link,
}

fn damage(dir: &Path, i: u64, how: &Damage) {
    let (path, at) = frame_of(dir, i);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    match how {
        Damage::Crc => bytes[at + RECORD_HEADER_LEN + 50] ^= 0x20,
        Damage::Link => {
            bytes[at + len - PREV_HASH_FROM_END + 3] ^= 0x01;
            let crc = crc32c::crc32c(&bytes[at..at + len - 4]);
            bytes[at + len - 4..at + len].copy_from_slice(&crc.to_le_bytes());
        }
    }
    std::fs::write(&path, bytes).unwrap();
}

/// Everything a read reports, as text (the error types are not `PartialEq`).
fn outcome(result: Result<Vec<Bytes>, StorageError>) -> String {
    match result {
        Ok(events) => format!("ok {} events, first {:?}", events.len(), events.first()),
        Err(error) => format!("{error:?}"),
    }
}

/// Reads that cover, start at, end just before and end at `bad`, on 1 and 4 threads.
fn reads_agree(dir: &Path, bad: u64) -> Vec<String> {
    let mut storage = Storage::open_with(dir, config(1)).unwrap();
    let reads = [
        (0, u64::MAX),
        (bad.saturating_sub(300), 100 * 700),
        (bad, 100),
        (bad.saturating_sub(200), 100 * 200),
        (bad.saturating_sub(201), 100 * 200),
        (bad + 1, 100 * 50),
    ];
    let mut outcomes = Vec::new();
    for (from, max_bytes) in reads {
        storage.set_verify_threads(1);
        let one = outcome(storage.read_from(STREAM, Offset::new(from), max_bytes));
        storage.set_verify_threads(4);
        let four = outcome(storage.read_from(STREAM, Offset::new(from), max_bytes));
        assert_eq!(one, four, "read of {max_bytes} bytes from {from}");
        outcomes.push(one);
    }
    storage.set_verify_threads(1);
    let one = format!("{:?}", storage.verify_stream(STREAM));
    storage.set_verify_threads(4);
    assert_eq!(one, format!("{:?}", storage.verify_stream(STREAM)));
    outcomes.push(one);
    outcomes
}

#[test]
fn an_intact_stream_reads_the_same_on_every_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let outcomes = reads_agree(dir.path(), 1_500);
    assert!(outcomes[0].starts_with("ok 3000 events"), "{}", outcomes[0]);
    assert!(
        outcomes[6].starts_with("Ok(VerifyReport"),
        "{}",
        outcomes[6]
    );
    let storage = Storage::open_with(dir.path(), config(4)).unwrap();
    let events = storage.read_from(STREAM, Offset::ZERO, u64::MAX).unwrap();
    assert_eq!(events, (0..COUNT).map(event).collect::<Vec<_>>());
}

#[test]
fn the_first_damaged_record_is_reported_as_on_one_thread() {
    // 1,500: the middle of a long read in segment 1 (completed, mapped). BLOCK_FRAMES and
    // 2 * BLOCK_FRAMES: the first frames of the second and third blocks claimed by the
    // threads of a read from 0 (no restart record before them). 2,900: the active segment.
    let block = BLOCK_FRAMES as u64;
    for bad in [1_500, block, 2 * block - 1, 2 * block, 2_900] {
        for how in [Damage::Crc, Damage::Link] {
            let dir = tempfile::tempdir().unwrap();
            build(dir.path());
            let (path, at) = frame_of(dir.path(), bad);
            damage(dir.path(), bad, &how);
            let outcomes = reads_agree(dir.path(), bad);
            let variant = match how {
                Damage::Crc => "CorruptRecord",
                Damage::Link => "ChainVerificationFailed",
            };
            // Reads that reach the damage (the whole stream, 700 events across it, one
            // event at it, and `verify_stream`) name it: variant, offset, file and byte. The
            // others (ending before it or starting past it) only have to agree.
            for i in [0, 1, 2, 6] {
                let text = &outcomes[i];
                assert!(text.contains(variant), "read {i} at {bad}: {text}");
                assert!(text.contains(&format!("offset: Offset({bad})")), "{text}");
                assert!(text.contains(&format!("position: {at}")), "{text}");
                assert!(
                    text.contains(&path.file_name().unwrap().to_string_lossy().to_string()),
                    "{text}"
                );
            }
        }
    }
}
