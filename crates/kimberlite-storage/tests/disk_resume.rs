//! Opening the active segment from its index's resume point (`src/disk/resume.rs`): a clean,
//! flushed store opens without scanning; every index that does not check out falls back to the
//! full scan and reaches exactly the decision the full scan reaches without any index.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{altered, append_events, event, frames, index_file, rewrite_frame, segment_file};
use kimberlite_storage::{RecoveryAction, Storage, StorageBackend, StorageConfig, StoreBackend};
use kimberlite_types::{CompressionKind, Offset, StreamId};

const STREAM: StreamId = StreamId::new(4);
/// Events in the store (about 3 segments of ~120 records).
const COUNT: u64 = 400;

fn config() -> StorageConfig {
    StorageConfig {
        max_segment_size: 16 * 1024,
        restart_interval: 4,
        compression: CompressionKind::None,
        index_interval: 2,
        ..StorageConfig::default()
    }
}

/// A store of `COUNT` events, closed after `flush` (index with a resume point).
fn flushed_store(dir: &Path) -> u32 {
    let mut storage = Storage::open_with(dir, config()).unwrap();
    append_events(&mut storage, STREAM, 0, COUNT, 5, false);
    storage.flush().unwrap();
    let segments = storage.segment_count(STREAM) as u32;
    assert!(segments >= 3, "{segments} segments");
    segments - 1
}

/// The files of active segment `num` (which must still be the last one).
fn active_paths(dir: &Path, num: u32) -> (PathBuf, PathBuf) {
    assert!(!segment_file(dir, STREAM, num + 1).exists(), "rotated");
    (segment_file(dir, STREAM, num), index_file(dir, STREAM, num))
}

/// The segment length an index file covers (bytes 24..32, `docs/FORMAT.md`).
fn indexed_len(index: &Path) -> u64 {
    let bytes = std::fs::read(index).unwrap();
    u64::from_le_bytes(bytes[24..32].try_into().unwrap())
}

/// Frames of `segment` at or past byte `from`.
fn frames_past(segment: &Path, from: u64) -> u64 {
    frames(segment)
        .iter()
        .filter(|(position, _, _)| *position as u64 >= from)
        .count() as u64
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Everything a caller can observe of the stream after open, paths made relative to `dir`.
fn outcome(storage: &mut Storage, dir: &Path) -> Vec<String> {
    let strip = |text: String| text.replace(&dir.display().to_string(), "<dir>");
    let mut seen: Vec<String> = storage
        .recovery_report()
        .actions
        .iter()
        .map(|action| strip(action.to_string()))
        .collect();
    seen.push(strip(format!("{:?}", storage.latest_chain_hash(STREAM))));
    seen.push(format!("{:?}", storage.stream_stats(STREAM)));
    let verified = storage.verify_stream(STREAM).map(|report| report.head);
    seen.push(strip(format!("{verified:?}")));
    for from in (0..COUNT + 20).step_by(7) {
        let read = storage.read_from(STREAM, Offset::new(from), 300);
        seen.push(strip(format!("{read:?}")));
    }
    seen
}

/// Opens a copy of `dir` as it is and a copy without the active index, and checks that both
/// show the same outcome (the full scan's); returns the first one's `records_scanned`.
fn assert_same_as_without_index(dir: &Path, active: u32) -> u64 {
    let with = tempfile::tempdir().unwrap();
    let without = tempfile::tempdir().unwrap();
    copy_dir(dir, with.path());
    copy_dir(dir, without.path());
    std::fs::remove_file(index_file(without.path(), STREAM, active)).unwrap();
    let mut a = Storage::open_with(with.path(), config()).unwrap();
    let mut b = Storage::open_with(without.path(), config()).unwrap();
    assert_eq!(
        outcome(&mut a, with.path()),
        outcome(&mut b, without.path())
    );
    a.recovery_report().records_scanned
}

#[test]
fn a_clean_flushed_store_opens_without_scanning_its_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let active = flushed_store(dir.path());
    let (segment, index) = active_paths(dir.path(), active);
    assert_eq!(
        indexed_len(&index),
        std::fs::metadata(&segment).unwrap().len()
    );
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    let report = storage.recovery_report().clone();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.records_scanned, 0);
    let head = storage.latest_chain_hash(STREAM).unwrap();
    assert_eq!(storage.verify_stream(STREAM).unwrap().head, head);
    // Appends continue the chain from the resumed head.
    append_events(&mut storage, STREAM, COUNT, 10, 5, true);
    drop(storage);
    let added = frames_past(&segment, indexed_len(&index));
    assert!(added >= 10);
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    assert!(storage.recovery_report().is_clean());
    assert_eq!(storage.recovery_report().records_scanned, added);
    let expected: Vec<Bytes> = (0..COUNT + 10).map(|i| event(4, i)).collect();
    assert_eq!(common::read_all(&mut storage, STREAM, 500), expected);
    assert_eq!(assert_same_as_without_index(dir.path(), active), added);
}

#[test]
fn an_index_written_over_unsynced_bytes_carries_no_resume_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    append_events(&mut storage, STREAM, 0, COUNT, 5, false);
    // `flush_indexes` alone does not sync: the index must not vouch for these bytes.
    storage.flush_indexes().unwrap();
    let active = storage.segment_count(STREAM) as u32 - 1;
    drop(storage);
    let (segment, index) = active_paths(dir.path(), active);
    assert_eq!(
        indexed_len(&index),
        std::fs::metadata(&segment).unwrap().len()
    );
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    assert!(storage.recovery_report().is_clean());
    assert_eq!(
        storage.recovery_report().records_scanned,
        frames_past(&segment, 0)
    );
    // Open synced the segment and rewrote nothing; the next flush gives the resume point.
    let mut storage = storage;
    storage.flush_indexes().unwrap();
    drop(storage);
    let storage = Storage::open_with(dir.path(), config()).unwrap();
    assert_eq!(storage.recovery_report().records_scanned, 0);
}

#[test]
fn records_appended_after_the_index_are_scanned_from_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let active = flushed_store(dir.path());
    {
        // More records, synced but with no flush (a crash before it): the index is stale.
        let mut storage = Storage::open_with(dir.path(), config()).unwrap();
        append_events(&mut storage, STREAM, COUNT, 7, 3, true);
        append_events(&mut storage, STREAM, COUNT + 7, 6, 3, false);
    }
    let (segment, index) = active_paths(dir.path(), active);
    let past = frames_past(&segment, indexed_len(&index));
    assert!(past >= 13);
    assert_eq!(assert_same_as_without_index(dir.path(), active), past);
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    let expected: Vec<Bytes> = (0..COUNT + 13).map(|i| event(4, i)).collect();
    assert_eq!(common::read_all(&mut storage, STREAM, 500), expected);
}

#[test]
fn an_index_covering_more_than_the_file_falls_back_to_the_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let active = flushed_store(dir.path());
    let (segment, index) = active_paths(dir.path(), active);
    let all = frames(&segment);
    // Cut at a frame boundary (durable bytes lost: damage) and mid-frame (past nothing the
    // manifest vouches for only if the watermark allows it; either way the full scan decides).
    for cut in [all[all.len() / 2].0 as u64, all[all.len() - 1].0 as u64 + 3] {
        let case = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), case.path());
        let (segment, _) = active_paths(case.path(), active);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap();
        file.set_len(cut).unwrap();
        assert!(indexed_len(&index) > cut);
        let whole = all
            .iter()
            .filter(|(position, _, len)| (position + len) as u64 <= cut)
            .count() as u64;
        let scanned = assert_same_as_without_index(case.path(), active);
        assert_eq!(scanned, whole, "cut at {cut}: a full scan");
    }
}

#[test]
fn an_index_whose_hash_or_bytes_disagree_falls_back_to_the_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let active = flushed_store(dir.path());
    let (segment, index) = active_paths(dir.path(), active);
    let original = std::fs::read(&index).unwrap();
    // A wrong head with a valid CRC: the last covered frame does not hash to it.
    let mut wrong = original.clone();
    wrong[88] ^= 1;
    let at = wrong.len() - 4;
    let crc = crc32c::crc32c(&wrong[..at]);
    wrong[at..].copy_from_slice(&crc.to_le_bytes());
    // Garbage of every kind: cut short, bad CRC, not an index at all.
    let mut flipped = original.clone();
    flipped[40] ^= 0x40;
    for bad in [
        wrong,
        flipped,
        original[..original.len() / 2].to_vec(),
        b"garbage".to_vec(),
        vec![0; 200],
    ] {
        std::fs::write(&index, &bad).unwrap();
        let scanned = assert_same_as_without_index(dir.path(), active);
        assert_eq!(scanned, frames_past(&segment, 0));
    }
    std::fs::write(&index, &original).unwrap();
    // The last record rewritten (valid CRC, other payload): the index's hash catches it, and
    // the full scan then decides (it cannot tell: nothing links to the last record).
    let (position, record, _) = frames(&segment).pop().unwrap();
    assert!(!record.is_restart());
    rewrite_frame(&segment, position, &altered(&record));
    let scanned = assert_same_as_without_index(dir.path(), active);
    assert_eq!(scanned, frames_past(&segment, 0));
}

#[test]
fn a_torn_tail_past_the_indexed_end_is_truncated_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let active = flushed_store(dir.path());
    {
        let mut storage = Storage::open_with(dir.path(), config()).unwrap();
        append_events(&mut storage, STREAM, COUNT, 7, 4, false);
        // The last record a batch of its own: a torn write of it cuts it alone (row 4), not
        // its batch (row 10).
        append_events(&mut storage, STREAM, COUNT + 7, 1, 1, false);
    }
    let (segment, index) = active_paths(dir.path(), active);
    let past = frames_past(&segment, indexed_len(&index));
    let (last, _, len) = frames(&segment).pop().unwrap();
    let torn = last as u64 + len as u64 / 2;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(torn).unwrap();
    drop(file);
    let scanned = assert_same_as_without_index(dir.path(), active);
    assert_eq!(scanned, past - 1);
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    let cut: Vec<_> = storage.recovery_report().truncations().cloned().collect();
    assert!(
        matches!(&cut[..], [RecoveryAction::TornTailTruncated { from_len, to_len, .. }]
            if *from_len == torn && *to_len == last as u64),
        "{cut:?}"
    );
    assert_eq!(
        storage.stream_stats(STREAM).unwrap().next_offset.as_u64(),
        COUNT + 7
    );
    append_events(&mut storage, STREAM, COUNT + 7, 3, 3, true);
}

#[test]
fn an_index_ending_in_a_restart_record_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let active = flushed_store(dir.path());
    {
        let mut storage = Storage::open_with(dir.path(), config()).unwrap();
        // Up to a restart record offset, then a batch that starts with a restart record.
        let next = COUNT + (4 - COUNT % 4) % 4;
        append_events(&mut storage, STREAM, COUNT, next - COUNT, 1, true);
        append_events(&mut storage, STREAM, next, 2, 2, false);
    }
    let (segment, _) = active_paths(dir.path(), active);
    let all = frames(&segment);
    let (restart, record, len) = &all[all.len() - 3];
    assert!(record.is_restart());
    // The batch torn right after its restart record: open keeps the restart record (a whole frame).
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len((restart + len + 5) as u64).unwrap();
    drop(file);
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    assert_eq!(storage.recovery_report().truncations().count(), 1);
    storage.flush().unwrap();
    drop(storage);
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    assert!(storage.recovery_report().is_clean());
    assert_eq!(storage.recovery_report().records_scanned, 0);
    let next = storage.stream_stats(STREAM).unwrap().next_offset.as_u64();
    append_events(&mut storage, STREAM, next, 3, 3, true);
    assert!(storage.verify_stream(STREAM).is_ok());
}

#[test]
fn a_chain_break_in_the_active_segment_is_reported_at_every_open() {
    let dir = tempfile::tempdir().unwrap();
    let active = flushed_store(dir.path());
    let (segment, index) = active_paths(dir.path(), active);
    std::fs::remove_file(&index).unwrap();
    let all = frames(&segment);
    let (position, record, _) = all
        .iter()
        .rev()
        .filter(|(_, record, _)| !record.is_restart())
        .nth(4)
        .unwrap();
    rewrite_frame(&segment, *position, &altered(record));
    for _ in 0..2 {
        let mut storage = Storage::open_with(dir.path(), config()).unwrap();
        let report = storage.recovery_report().clone();
        let found = report
            .actions
            .iter()
            .any(|action| matches!(action, RecoveryAction::CorruptionFound { .. }));
        assert!(found, "{report}");
        assert_eq!(report.records_scanned, frames_past(&segment, 0));
        // Still appendable (row 9b); the flush must not let the next open skip the break.
        storage.flush().unwrap();
    }
}

#[test]
fn damage_below_the_indexed_end_is_found_by_reads_and_verify() {
    // What the resume point covers is trusted as a completed segment's records are: open
    // does not re-read it, verify and every read that reaches it do.
    let dir = tempfile::tempdir().unwrap();
    let active = flushed_store(dir.path());
    let (segment, _) = active_paths(dir.path(), active);
    let all = frames(&segment);
    let (position, record, _) = all
        .iter()
        .find(|(position, record, _)| *position > 40 && !record.is_restart())
        .unwrap();
    let offset = record.offset();
    rewrite_frame(&segment, *position, &altered(record));
    let mut storage = Storage::open_with(dir.path(), config()).unwrap();
    assert_eq!(storage.recovery_report().records_scanned, 0);
    let error = storage.verify_stream(STREAM).unwrap_err();
    assert!(error.is_corruption(), "{error}");
    let read = storage.read_from(STREAM, offset, u64::MAX);
    assert!(read.is_err_and(|error| error.is_corruption()));
}

#[test]
fn a_changed_previous_segment_falls_back_to_the_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let active = flushed_store(dir.path());
    // The previous segment's last record rewritten: the active segment's first link breaks.
    let previous = segment_file(dir.path(), STREAM, active - 1);
    let (position, record, _) = frames(&previous).pop().unwrap();
    rewrite_frame(&previous, position, &altered(&record));
    let (segment, _) = active_paths(dir.path(), active);
    let scanned = assert_same_as_without_index(dir.path(), active);
    assert_eq!(scanned, frames_past(&segment, 0));
}
