//! Torn tails: cut the last segment at every byte of its last record (and other unfinished
//! writes); the store opens, reports the truncation, keeps the prefix, and the next append
//! continues the chain exactly where it was.

mod common;

use bytes::Bytes;
use common::{append_events, event, read_all, segment_file, small_config};
use kimberlite_storage::{
    MemoryStorage, RecoveryAction, Storage, StorageBackend, StorageConfig, StoreBackend,
};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(1);

/// Writes `count` events (in batches of 3, the last event a batch of its own, so that a torn
/// write of it cuts it alone: rows 3–5, not row 10) and returns the config used.
fn write_store(dir: &std::path::Path, count: u64) -> StorageConfig {
    let config = StorageConfig {
        max_segment_size: 700,
        ..small_config()
    };
    let mut storage = Storage::open_with(dir, config).unwrap();
    append_events(&mut storage, STREAM, 0, count - 1, 3, false);
    append_events(&mut storage, STREAM, count - 1, 1, 1, false);
    config
}

fn last_segment(dir: &std::path::Path, config: StorageConfig) -> std::path::PathBuf {
    let segments = Storage::open_with(dir, config)
        .unwrap()
        .segment_count(STREAM);
    segment_file(dir, STREAM, u32::try_from(segments - 1).unwrap())
}

/// A store of `count` events (`write_store`) in a temp dir, its config, its last segment
/// file and that file's bytes.
fn store_and_last_segment(
    count: u64,
) -> (
    tempfile::TempDir,
    StorageConfig,
    std::path::PathBuf,
    Vec<u8>,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_store(dir.path(), count);
    let path = last_segment(dir.path(), config);
    let bytes = std::fs::read(&path).unwrap();
    (dir, config, path, bytes)
}

fn reference(count: u64) -> MemoryStorage {
    let mut memory = MemoryStorage::new();
    append_events(&mut memory, STREAM, 0, count, 3, false);
    memory
}

#[test]
fn truncation_at_every_byte_of_the_last_record() {
    let count = 20;
    let (dir, config, path, original) = store_and_last_segment(count);
    let last_frame = kimberlite_storage::RECORD_OVERHEAD + event(1, count - 1).len();
    let start = original.len() - last_frame;
    let mut memory = reference(count - 1);
    let head_before = memory.latest_chain_hash(STREAM).unwrap();
    let full_head = reference(count).latest_chain_hash(STREAM).unwrap();

    for cut in start..original.len() {
        std::fs::write(&path, &original[..cut]).unwrap();
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        let truncations: Vec<_> = storage.recovery_report().truncations().cloned().collect();
        if cut == start {
            assert!(truncations.is_empty(), "cut {cut}: {truncations:?}");
        } else {
            assert!(
                matches!(&truncations[..], [RecoveryAction::TornTailTruncated { to_len, .. }]
                    if *to_len == start as u64),
                "cut {cut}: {:?}",
                storage.recovery_report()
            );
            // The cut bytes were kept, exactly, under a name that says where they were.
            let [RecoveryAction::TornTailTruncated { kept_in, file, .. }] = &truncations[..] else {
                unreachable!()
            };
            assert_eq!(
                std::fs::read(kept_in).unwrap(),
                original[start..cut],
                "cut {cut}"
            );
            let segment = file
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap();
            assert_eq!(
                kept_in,
                &file
                    .parent()
                    .unwrap()
                    .join(kimberlite_storage::disk::TORN_DIR)
                    .join(kimberlite_storage::disk::torn_file_name(
                        segment,
                        start as u64
                    ))
            );
        }
        assert_eq!(
            storage.latest_chain_hash(STREAM).unwrap(),
            head_before,
            "cut {cut}"
        );
        let expected: Vec<Bytes> = (0..count - 1).map(|i| event(1, i)).collect();
        assert_eq!(read_all(&mut storage, STREAM, 50), expected, "cut {cut}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), start as u64);
        // The next append continues the chain: re-appending the lost event gives the
        // original head.
        let (next, head) = storage
            .append_batch(
                STREAM,
                vec![event(1, count - 1)],
                Offset::new(count - 1),
                head_before,
                false,
            )
            .unwrap();
        assert_eq!((next, Some(head)), (Offset::new(count), full_head));
        storage.verify_stream(STREAM).unwrap();
        drop(storage);
        std::fs::write(&path, &original).unwrap();
    }
    let _ = memory.verify_stream(STREAM).unwrap();
}

/// What an unfinished write leaves: zeros past the end, a last frame whose end (its CRC
/// field) was never written (reads zero), a length prefix cut short. (A lost sector in the
/// middle of a large frame: `scan::shows_unwritten_bytes`'s unit tests.)
#[test]
fn zero_filled_and_unwritten_tails_are_truncated() {
    for damage in ["zeros", "unwritten_crc", "short_prefix"] {
        let count = 10;
        let (dir, config, path, mut bytes) = store_and_last_segment(count);
        let len = bytes.len();
        let mut expected_events = count;
        match damage {
            "zeros" => bytes.extend_from_slice(&[0u8; 300]),
            "unwritten_crc" => {
                bytes[len - 4..].fill(0);
                expected_events -= 1;
            }

            _ => bytes.extend_from_slice(&[9, 0]),
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        assert_eq!(
            storage.recovery_report().truncations().count(),
            1,
            "{damage}"
        );
        let all = read_all(&mut storage, STREAM, u64::MAX);
        assert_eq!(all.len() as u64, expected_events, "{damage}");
        let memory_head = reference(expected_events)
            .latest_chain_hash(STREAM)
            .unwrap();
        assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), memory_head);
        append_events(&mut storage, STREAM, expected_events, 5, 2, true);
        storage.verify_stream(STREAM).unwrap();
    }
}

#[test]
fn a_tail_below_the_durable_watermark_is_damage_not_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        max_segment_size: u64::MAX,
        ..small_config()
    };
    {
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        append_events(&mut storage, STREAM, 0, 10, 3, false);
        storage.flush().unwrap();
    }
    let path = segment_file(dir.path(), STREAM, 0);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let mut storage = Storage::open_with(dir.path(), config).unwrap();
    assert_eq!(storage.recovery_report().truncations().count(), 0);
    assert!(storage
        .recovery_report()
        .actions
        .iter()
        .any(|action| matches!(action, RecoveryAction::CorruptionFound { .. })));
    // Nothing was cut.
    assert_eq!(std::fs::read(&path).unwrap().len(), bytes.len() - 5);
    // Reads before the damage work; reads reaching it fail, naming the offset.
    assert_eq!(storage.read_from(STREAM, Offset::ZERO, 1).unwrap().len(), 1);
    let error = storage
        .read_from(STREAM, Offset::new(5), u64::MAX)
        .unwrap_err();
    assert!(error.is_corruption(), "{error}");
    assert!(error.to_string().contains("offset 9"), "{error}");
    assert!(storage.verify_stream(STREAM).is_err());
    let refused = storage.append_batch(
        STREAM,
        vec![Bytes::from_static(b"x")],
        Offset::new(9),
        None,
        false,
    );
    assert!(refused.unwrap_err().is_corruption());
}

/// A whole last record with one bit changed (bit rot, or a tampered byte) is not an
/// unfinished write: nothing of it reads as never written. It used to be cut off as torn,
/// deleting a record that may have been synced, after which the stream verified intact. Now
/// it is damage: reported, left on disk, the records before it readable, appends refused.
/// Also with the bit in the length prefix (the prefix then runs past the end of the file,
/// but the bytes there are a whole frame with only that prefix wrong).
#[test]
fn a_flipped_bit_in_the_last_record_is_damage_not_a_torn_write() {
    for (what, at_end) in [("payload", 40usize), ("crc", 1), ("length", 0)] {
        let count = 10;
        let (dir, config, path, mut bytes) = store_and_last_segment(count);
        let len = bytes.len();
        let at = if what == "length" {
            last_frame_start(&bytes) + 1
        } else {
            len - at_end
        };
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();

        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        assert_eq!(storage.recovery_report().truncations().count(), 0, "{what}");
        assert!(
            storage
                .recovery_report()
                .actions
                .iter()
                .any(|action| matches!(action, RecoveryAction::CorruptionFound { .. })),
            "{what}: {}",
            storage.recovery_report()
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}: nothing cut");
        let error = storage
            .read_from(STREAM, Offset::ZERO, u64::MAX)
            .unwrap_err();
        assert!(error.is_corruption(), "{what}: {error}");
        assert!(error.to_string().contains("offset 9"), "{what}: {error}");
        assert_eq!(
            storage.read_from(STREAM, Offset::ZERO, 1).unwrap().len(),
            1,
            "{what}: the records before it read"
        );
        assert!(storage.verify_stream(STREAM).is_err(), "{what}");
        let refused = storage.append_batch(
            STREAM,
            vec![Bytes::from_static(b"x")],
            Offset::new(count),
            None,
            false,
        );
        assert!(refused.unwrap_err().is_corruption(), "{what}");
    }
}

/// Where the last frame of a segment file starts, found by walking the length prefixes from
/// the end of the header.
fn last_frame_start(bytes: &[u8]) -> usize {
    // The segment header is 40 bytes (`docs/FORMAT.md`).
    let mut position = 40;
    loop {
        let len = u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap()) as usize;
        if position + len >= bytes.len() {
            return position;
        }
        position += len;
    }
}
