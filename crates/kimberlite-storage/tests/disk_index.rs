//! Sparse indexes: persisted on `flush_indexes` and rotation, rebuilt when missing or stale.

mod common;

use common::{append_events, event, index_file, read_all, small_config};
use kimberlite_storage::{RecoveryAction, Storage, StorageBackend, StoreBackend};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(2);

fn rebuilt(storage: &Storage) -> usize {
    storage
        .recovery_report()
        .actions
        .iter()
        .filter(|action| matches!(action, RecoveryAction::IndexRebuilt { .. }))
        .count()
}

#[test]
fn indexes_are_written_at_rotation_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    append_events(&mut storage, STREAM, 0, 40, 4, false);
    let segments = storage.segment_count(STREAM) as u32;
    assert!(segments > 2);
    for num in 0..segments - 1 {
        assert!(index_file(dir.path(), STREAM, num).exists(), "index {num}");
    }
    let active = index_file(dir.path(), STREAM, segments - 1);
    storage.flush_indexes().unwrap();
    assert!(active.exists());
}

#[test]
fn a_deleted_index_is_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    {
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        append_events(&mut storage, STREAM, 0, 40, 4, false);
        storage.flush_indexes().unwrap();
    }
    let path = index_file(dir.path(), STREAM, 1);
    let original = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut storage = Storage::open_with(dir.path(), config).unwrap();
    assert_eq!(rebuilt(&storage), 1, "{:?}", storage.recovery_report());
    assert_eq!(std::fs::read(&path).unwrap(), original);
    let expected: Vec<_> = (0..40).map(|i| event(2, i)).collect();
    assert_eq!(read_all(&mut storage, STREAM, 30), expected);
    drop(storage);
    let storage = Storage::open_with(dir.path(), config).unwrap();
    assert!(storage.recovery_report().is_clean());
}

#[test]
fn stale_and_garbage_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    {
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        append_events(&mut storage, STREAM, 0, 40, 4, false);
        assert!(storage.segment_count(STREAM) > 3);
    }
    // Index 0 from another segment (stale), index 1 garbage, index 2 cut short.
    let index = |n| index_file(dir.path(), STREAM, n);
    std::fs::copy(index(2), index(0)).unwrap();
    std::fs::write(index(1), b"not an index").unwrap();
    let bytes = std::fs::read(index(2)).unwrap();
    std::fs::write(index(2), &bytes[..bytes.len() / 2]).unwrap();
    let storage = Storage::open_with(dir.path(), config).unwrap();
    assert_eq!(rebuilt(&storage), 3, "{:?}", storage.recovery_report());
    for from in 0..40 {
        let page = storage.read_from(STREAM, Offset::new(from), 1).unwrap();
        assert_eq!(page, vec![event(2, from)]);
    }
}

/// An index rewritten with a valid checksum but every entry's position wrong (pointing one
/// byte into a record): reads never return other data, and they no longer fail either: an
/// entry that does not lead to the restart record it names is passed over for an earlier start
/// (before, every read through it failed, naming the intact segment as corrupt).
#[test]
fn a_wrong_index_entry_is_passed_over_never_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    {
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        append_events(&mut storage, STREAM, 0, 40, 4, false);
    }
    // Index format 2 (docs/FORMAT.md): entries of 24 bytes from byte 120 (offset u64,
    // position u64, kind u8, 7 zero bytes), the count at byte 80, a CRC32C last.
    let path = index_file(dir.path(), STREAM, 0);
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    let count = u32::from_le_bytes(bytes[80..84].try_into().unwrap()) as usize;
    assert!(
        (0..count).any(|i| bytes[120 + 24 * i + 16] == 1),
        "the index has restart record entries to forge"
    );
    for i in 0..count {
        let at = 120 + 24 * i + 8;
        let position = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        bytes[at..at + 8].copy_from_slice(&(position + 1).to_le_bytes());
    }
    let crc_at = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..crc_at]);
    bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let mut storage = Storage::open_with(dir.path(), config).unwrap();
    assert_eq!(rebuilt(&storage), 0, "the forged index is taken as it is");
    for from in 0..40 {
        assert_eq!(
            storage.read_from(STREAM, Offset::new(from), 1).unwrap(),
            vec![event(2, from)],
            "from {from}"
        );
    }
    storage.verify_stream(STREAM).unwrap();
}
