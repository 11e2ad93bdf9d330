//! The recovery decision table (`docs/INTERNALS.md`, "Recovery"), row by row, on the
//! active segment. Rows 3–5 and 7 are also covered at every byte in `disk_torn_tail.rs`.

mod common;

use bytes::Bytes;
use common::{altered, append_events, frames, rewrite_frame, segment_file, small_config};
use kimberlite_storage::{
    RecoveryAction, Storage, StorageBackend, StorageConfig, StorageError, StoreBackend,
};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(11);
const COUNT: u64 = 20;

fn config() -> StorageConfig {
    StorageConfig {
        max_segment_size: u64::MAX,
        ..small_config()
    }
}

/// A store of `COUNT` events in one (active) segment; flushed (watermark at the end) or not.
fn store(dir: &std::path::Path, flush: bool) -> std::path::PathBuf {
    let mut storage = Storage::open_with(dir, config()).unwrap();
    append_events(&mut storage, STREAM, 0, COUNT, 4, false);
    if flush {
        storage.flush().unwrap();
    }
    segment_file(dir, STREAM, 0)
}

fn corruption_found(storage: &Storage) -> bool {
    storage
        .recovery_report()
        .actions
        .iter()
        .any(|action| matches!(action, RecoveryAction::CorruptionFound { .. }))
}

/// Damage: nothing cut, reads reaching it fail, appends refused.
fn assert_damage(dir: &std::path::Path, path: &std::path::Path, len: u64) {
    let mut storage = Storage::open_with(dir, config()).unwrap();
    assert!(corruption_found(&storage), "{}", storage.recovery_report());
    assert_eq!(storage.recovery_report().truncations().count(), 0);
    assert_eq!(
        std::fs::metadata(path).unwrap().len(),
        len,
        "nothing may be cut"
    );
    let error = storage
        .read_from(STREAM, Offset::ZERO, u64::MAX)
        .unwrap_err();
    assert!(error.is_corruption(), "{error}");
    assert!(storage.verify_stream(STREAM).is_err());
    let append = storage.append_batch(
        STREAM,
        vec![Bytes::from_static(b"x")],
        Offset::new(COUNT),
        None,
        true,
    );
    assert!(append.unwrap_err().is_corruption());
    assert!(storage.latest_chain_hash(STREAM).is_err());
}

#[test]
fn row_2_a_clean_end_below_the_watermark_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path(), true);
    let cut = frames(&path)[10].0 as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    assert_damage(dir.path(), &path, cut);
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    let error = storage
        .read_from(STREAM, Offset::new(2), u64::MAX)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::MissingRecords { .. }),
        "{error}"
    );
}

#[test]
fn row_6_a_length_that_runs_past_eof_with_whole_frames_after_it_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path(), false);
    let position = frames(&path)[5].0;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[position..position + 4].copy_from_slice(&10_000_000u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert_damage(dir.path(), &path, bytes.len() as u64);
}

#[test]
fn row_8_an_undecodable_frame_with_bytes_after_it_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path(), false);
    let position = frames(&path)[7].0;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[position + 60] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    assert_damage(dir.path(), &path, bytes.len() as u64);
}

#[test]
fn row_9a_whole_frames_at_the_wrong_offset_are_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path(), false);
    // A whole data record re-encoded (valid CRC) at another offset, as if misplaced.
    let (position, record, _) = frames(&path)
        .into_iter()
        .find(|(_, record, _)| record.offset() == Offset::new(6) && !record.is_restart())
        .unwrap();
    let misplaced = kimberlite_storage::Record::with_compression(
        Offset::new(60),
        record.prev_hash(),
        record.kind(),
        kimberlite_types::CompressionKind::None,
        record.payload().clone(),
    );
    rewrite_frame(&path, position, &misplaced);
    let bytes = std::fs::read(&path).unwrap();
    assert_damage(dir.path(), &path, bytes.len() as u64);
}

#[test]
fn row_9b_a_broken_link_is_reported_and_the_stream_stays_appendable() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path(), false);
    let (position, record, _) = frames(&path)
        .into_iter()
        .find(|(_, record, _)| record.offset() == Offset::new(2) && !record.is_restart())
        .unwrap();
    rewrite_frame(&path, position, &altered(&record));
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    assert!(corruption_found(&storage), "{}", storage.recovery_report());
    assert_eq!(storage.recovery_report().truncations().count(), 0);
    let error = storage
        .read_from(STREAM, Offset::ZERO, u64::MAX)
        .unwrap_err();
    assert!(
        matches!(error, StorageError::ChainVerificationFailed { offset, .. } if offset == Offset::new(3)),
        "{error}"
    );
    // Reads from the restart record at 4 on are intact, and the chain goes on.
    assert_eq!(
        storage
            .read_from(STREAM, Offset::new(4), u64::MAX)
            .unwrap()
            .len(),
        16
    );
    append_events(&mut storage, STREAM, COUNT, 3, 3, true);
    assert_eq!(
        storage
            .read_from(STREAM, Offset::new(8), u64::MAX)
            .unwrap()
            .len(),
        15
    );
    assert!(storage.verify_stream(STREAM).is_err());
}

/// A crash while rotation created segment 2 (its header not yet written whole, the manifest
/// not yet listing it): the header is written afresh and appends go on.
#[test]
fn an_unfinished_header_of_an_unlisted_active_segment_is_rewritten() {
    let config = StorageConfig {
        max_segment_size: 0,
        ..small_config()
    };
    for damage in [0usize, 17, 40] {
        let dir = tempfile::tempdir().unwrap();
        let manifest = common::stream_dir(dir.path(), STREAM).join("manifest.json");
        {
            let mut storage = Storage::open_with(dir.path(), config).unwrap();
            append_events(&mut storage, STREAM, 0, 3, 3, true);
            assert_eq!(storage.segment_count(STREAM), 2);
            let listing_two = std::fs::read(&manifest).unwrap();
            append_events(&mut storage, STREAM, 3, 3, 3, true);
            assert_eq!(storage.segment_count(STREAM), 3);
            drop(storage);
            std::fs::write(&manifest, listing_two).unwrap();
        }
        let path = segment_file(dir.path(), STREAM, 2);
        std::fs::write(&path, vec![0u8; damage]).unwrap();
        let mut storage = Storage::open_with(dir.path(), config).unwrap();
        assert!(
            storage
                .recovery_report()
                .actions
                .iter()
                .any(|action| matches!(action, RecoveryAction::SegmentHeaderRewritten { .. })),
            "{damage}: {}",
            storage.recovery_report()
        );
        assert_eq!(storage.segment_count(STREAM), 3);
        let head = storage.latest_chain_hash(STREAM).unwrap();
        storage
            .append_batch(
                STREAM,
                vec![Bytes::from_static(b"next")],
                Offset::new(6),
                head,
                true,
            )
            .unwrap();
        storage.verify_stream(STREAM).unwrap();
        drop(storage);
        let storage = Storage::open_with(dir.path(), config).unwrap();
        assert!(
            storage.recovery_report().is_clean(),
            "{}",
            storage.recovery_report()
        );
    }
}

/// A segment the manifest lists had its header synced before it was listed: cut below its
/// header (to nothing, inside it, or zeroed), it is damage, however many records it held. The
/// stream is left unopened and untouched; nothing is rewritten. (It used to get a fresh
/// header whenever the manifest said the segment held no records, as it says of every active
/// segment: a store's only segment cut to nothing lost its records and verified intact.)
#[test]
fn a_listed_segment_cut_below_its_header_is_damage_not_an_unfinished_header() {
    for (records, damage) in [(6u64, 0usize), (6, 17), (6, 40), (1, 0), (1, 40)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut storage = Storage::open_with(dir.path(), config()).unwrap();
            append_events(&mut storage, STREAM, 0, records, 3, true);
            assert_eq!(storage.segment_count(STREAM), 1);
        }
        let path = segment_file(dir.path(), STREAM, 0);
        std::fs::write(&path, vec![0u8; damage]).unwrap();
        let storage = Storage::open_with(dir.path(), config()).unwrap();
        assert!(
            !storage
                .recovery_report()
                .actions
                .iter()
                .any(|action| matches!(action, RecoveryAction::SegmentHeaderRewritten { .. })),
            "{records}/{damage}: {}",
            storage.recovery_report()
        );
        assert!(corruption_found(&storage), "{records}/{damage}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            vec![0u8; damage],
            "untouched"
        );
        let error = storage.latest_chain_hash(STREAM).unwrap_err();
        assert!(error.is_corruption(), "{records}/{damage}: {error}");
    }
}

#[test]
fn leftover_temp_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path(), false);
    let stream_dir = path.parent().unwrap().to_path_buf();
    std::fs::write(stream_dir.join("manifest.json.tmp"), b"{half").unwrap();
    std::fs::write(stream_dir.join("00000000.idx.tmp"), b"half").unwrap();
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    let removed = storage
        .recovery_report()
        .actions
        .iter()
        .filter(|action| matches!(action, RecoveryAction::TempFileRemoved { .. }))
        .count();
    assert_eq!(removed, 2, "{}", storage.recovery_report());
    assert!(!stream_dir.join("manifest.json.tmp").exists());
}
