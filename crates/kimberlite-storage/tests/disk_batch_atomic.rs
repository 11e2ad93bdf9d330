//! A batch is all-or-nothing across a crash (row 10 of the recovery table,
//! `docs/INTERNALS.md`): a segment that ends after some whole frames of a batch (a crash in
//! the middle of its writes) opens at the end of the batch before it, with the cut bytes kept
//! in `torn/` and reported. Each batch of a call that writes several (group commit) keeps its
//! own boundary; frames that mark no boundary (written before the mark existed) are each a
//! batch.

mod common;

use bytes::Bytes;
use common::{append_events, event, frames, rewrite_frame, segment_file, small_config};
use kimberlite_storage::{
    OsFileSystem, ReadOnlyFs, RecoveryAction, Storage, StorageBackend, StorageConfig, StoreBackend,
};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(5);

fn config() -> StorageConfig {
    StorageConfig {
        max_segment_size: u64::MAX,
        ..small_config()
    }
}

fn events(from: u64, count: u64) -> Vec<Bytes> {
    (from..from + count)
        .map(|i| event(STREAM.as_u64(), i))
        .collect()
}

/// A store with batches of `lens` events, each appended with sync; returns the segment path,
/// its bytes and the byte position where each batch ends.
fn store(dir: &std::path::Path, lens: &[u64]) -> (std::path::PathBuf, Vec<u8>, Vec<u64>) {
    let mut storage = Storage::open_with(dir, config()).unwrap();
    let mut next = 0;
    let mut ends = Vec::new();
    for len in lens {
        append_events(&mut storage, STREAM, next, *len, *len, true);
        next += len;
        ends.push(storage.stream_stats(STREAM).unwrap().stored_bytes);
    }
    drop(storage);
    let path = segment_file(dir, STREAM, 0);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes, ends)
}

/// Cuts the segment to `cut` bytes, reopens, and checks the stream ends at `kept` events,
/// at byte `batch_end`, with the cut bytes kept aside and reported; restores the file.
fn assert_cut_back(dir: &std::path::Path, original: &[u8], cut: usize, batch_end: u64, kept: u64) {
    let path = segment_file(dir, STREAM, 0);
    std::fs::write(&path, &original[..cut]).unwrap();
    let mut storage = Storage::open_with(dir, config()).unwrap();
    let cuts: Vec<_> = storage.recovery_report().truncations().cloned().collect();
    let [RecoveryAction::TornTailTruncated {
        to_len,
        from_len,
        kept_in,
        reason,
        ..
    }] = &cuts[..]
    else {
        panic!("cut {cut}: {}", storage.recovery_report());
    };
    assert_eq!((*from_len, *to_len), (cut as u64, batch_end), "cut {cut}");
    assert!(reason.contains("batch"), "{reason}");
    assert_eq!(
        std::fs::read(kept_in).unwrap(),
        original[batch_end as usize..cut]
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), batch_end);
    assert_eq!(
        storage.read_from(STREAM, Offset::ZERO, u64::MAX).unwrap(),
        events(0, kept),
        "cut {cut}"
    );
    storage.verify_stream(STREAM).unwrap();
    // The next append continues the chain where the last whole batch ended.
    let head = storage.latest_chain_hash(STREAM).unwrap();
    storage
        .append_batch(STREAM, events(kept, 1), Offset::new(kept), head, true)
        .unwrap();
    drop(storage);
    std::fs::write(&path, original).unwrap();
}

#[test]
fn a_batch_cut_in_its_middle_is_removed_whole_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (path, original, ends) = store(dir.path(), &[5, 200]);
    let batch = frames(&path)
        .into_iter()
        .filter(|(position, ..)| *position as u64 >= ends[0])
        .collect::<Vec<_>>();
    assert!(batch.len() > 200, "restart records inside the batch too");
    // After whole frames of the batch (the first, several, all but its last), and inside a
    // frame.
    for (position, _, len) in [&batch[1], &batch[60], &batch[batch.len() - 1]] {
        assert_cut_back(dir.path(), &original, *position, ends[0], 5);
        assert_cut_back(dir.path(), &original, position + len / 2, ends[0], 5);
    }
    // At the boundary itself nothing is cut.
    std::fs::write(&path, &original[..ends[0] as usize]).unwrap();
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    assert!(
        storage.recovery_report().is_clean(),
        "{}",
        storage.recovery_report()
    );
    assert_eq!(storage.next_offset(STREAM).unwrap(), Offset::new(5));
}

#[test]
fn each_batch_of_one_call_keeps_its_own_boundary() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut storage = Storage::open_with(dir.path(), config()).unwrap();
        storage
            .append_batches(STREAM, events(0, 12), &[3, 4, 5], Offset::ZERO, None, true)
            .unwrap();
    }
    let path = segment_file(dir.path(), STREAM, 0);
    let original = std::fs::read(&path).unwrap();
    let data: Vec<_> = frames(&path)
        .into_iter()
        .filter(|(_, record, _)| !record.is_restart())
        .collect();
    let ends_of = |offset: usize| (data[offset].0 + data[offset].2) as u64;
    let flags: Vec<bool> = data.iter().map(|(_, r, _)| r.continues_batch()).collect();
    let mut expected = vec![true; 12];
    for last in [2, 6, 11] {
        expected[last] = false;
    }
    assert_eq!(flags, expected);
    // Inside the second batch: the first stays; inside the third: the first two stay.
    assert_cut_back(dir.path(), &original, data[4].0, ends_of(2), 3);
    assert_cut_back(dir.path(), &original, data[10].0 + 3, ends_of(6), 7);
}

#[test]
fn frames_without_the_mark_are_each_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, ends) = store(dir.path(), &[5, 20]);
    for (position, record, _) in frames(&path) {
        rewrite_frame(&path, position, &record.with_batch_continues(false));
    }
    let data: Vec<_> = frames(&path)
        .into_iter()
        .filter(|(position, record, _)| !record.is_restart() && *position as u64 >= ends[0])
        .collect();
    let cut = data[10].0;
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..cut]).unwrap();
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    assert!(
        storage.recovery_report().is_clean(),
        "{}",
        storage.recovery_report()
    );
    assert_eq!(storage.next_offset(STREAM).unwrap(), Offset::new(15));
}

#[test]
fn a_read_only_open_reports_the_cut_and_cuts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, original, ends) = store(dir.path(), &[5, 50]);
    let cut = original.len() - 100;
    std::fs::write(&path, &original[..cut]).unwrap();
    let storage = Storage::open_on(ReadOnlyFs::new(OsFileSystem), dir.path(), config()).unwrap();
    let cuts: Vec<_> = storage.recovery_report().truncations().cloned().collect();
    assert!(
        matches!(&cuts[..], [RecoveryAction::TornTailTruncated { to_len, .. }] if *to_len == ends[0]),
        "{cuts:?}"
    );
    assert_eq!(
        storage.read_from(STREAM, Offset::ZERO, u64::MAX).unwrap(),
        events(0, 5)
    );
    drop(storage);
    assert_eq!(std::fs::read(&path).unwrap(), original[..cut]);
    assert!(!common::stream_dir(dir.path(), STREAM).join("torn").exists());
}

#[test]
fn a_batch_cut_below_the_durable_watermark_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut storage = Storage::open_with(dir.path(), config()).unwrap();
        append_events(&mut storage, STREAM, 0, 30, 10, true);
        storage.flush().unwrap();
    }
    let path = segment_file(dir.path(), STREAM, 0);
    let original = std::fs::read(&path).unwrap();
    let cut = frames(&path)[25].0;
    std::fs::write(&path, &original[..cut]).unwrap();
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    assert_eq!(storage.recovery_report().truncations().count(), 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), cut as u64);
    assert!(storage.latest_chain_hash(STREAM).is_err());
}
