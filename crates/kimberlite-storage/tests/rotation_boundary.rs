//! Rotation at the exact boundary, through both backends: a segment whose logical size lands
//! exactly on `max_segment_size` rotates after that batch; one byte under does not; one byte
//! over does. Both backends give the same segment counts, and the disk store the same after a
//! reopen.

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_storage::{MemoryStorage, Storage, StorageBackend, StorageConfig, RECORD_OVERHEAD};
use kimberlite_types::{CompressionKind, Offset, StreamId};

const STREAM: StreamId = StreamId::new(1);
const LEN: usize = 40;

/// Appends batches of `LEN`-byte events, recording the segment count after each batch.
fn segment_counts(backend: &mut impl StorageBackend, batches: &[usize]) -> Vec<usize> {
    let mut next = Offset::ZERO;
    let mut head: Option<ChainHash> = None;
    let mut counts = Vec::new();
    for &batch in batches {
        let events: Vec<Bytes> = (0..batch)
            .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; LEN]))
            .collect();
        let (after, hash) = backend
            .append_batch(STREAM, events, next, head, true)
            .unwrap();
        next = after;
        head = Some(hash);
        counts.push(backend.segment_count(STREAM));
    }
    counts
}

#[test]
fn rotation_at_exactly_max_segment_size_and_one_byte_either_side() {
    // A data record's logical size: its frame as if stored uncompressed (rotation.rs).
    let record = (RECORD_OVERHEAD + LEN) as u64;
    // Batches of 2, 1, 1 events against a limit of three records: the second batch lands on
    // 3 records exactly (rotates), one byte under the limit it waits for the next batch.
    let batches = [2, 1, 1, 2];
    for (limit, expected) in [
        (3 * record - 1, vec![1, 2, 2, 3]),
        (3 * record, vec![1, 2, 2, 3]),
        (3 * record + 1, vec![1, 1, 2, 2]),
    ] {
        let mut memory = MemoryStorage::with_max_segment_size(limit);
        assert_eq!(
            segment_counts(&mut memory, &batches),
            expected,
            "memory, limit {limit}"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            max_segment_size: limit,
            compression: CompressionKind::Lz4,
            ..StorageConfig::default()
        };
        {
            let mut disk = Storage::open_with(dir.path(), config).unwrap();
            assert_eq!(
                segment_counts(&mut disk, &batches),
                expected,
                "disk, limit {limit}"
            );
            assert_eq!(
                disk.completed_segments(STREAM),
                memory.completed_segments(STREAM)
            );
        }
        let disk = Storage::open_with(dir.path(), config).unwrap();
        assert_eq!(disk.segment_count(STREAM), *expected.last().unwrap());
        let all = disk.read_from(STREAM, Offset::ZERO, u64::MAX).unwrap();
        assert_eq!(all.len(), 6);
    }
}
