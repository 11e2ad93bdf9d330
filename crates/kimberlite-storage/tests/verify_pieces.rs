//! A verification walked in pieces (`verify_stream_piece`) checks what one walk checks: the
//! same report, every event handed once in order, damage found at the same offset; records
//! appended between pieces (a rotation included) are verified too; a pause point is refused
//! by another stream or another handle. On disk and in memory alike.

mod common;

use bytes::Bytes;
use common::{append_events, small_config};
use kimberlite_storage::{
    MemoryStorage, Storage, StorageError, VerifyReport, VerifyResume, VerifyStep,
};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(3);
const OTHER: StreamId = StreamId::new(4);
const EVENTS: u64 = 700;

/// The two backends' piece walks, behind one signature.
trait Pieces {
    fn piece(
        &self,
        stream: StreamId,
        from: Option<VerifyResume>,
        max_records: u64,
        on_event: &mut dyn FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError>;
}

/// Both backends have the method itself; the trait only names it once for the tests.
macro_rules! pieces_by_method {
    ($($backend:ty),*) => {$(
        impl Pieces for $backend {
            fn piece(
                &self,
                stream: StreamId,
                from: Option<VerifyResume>,
                max_records: u64,
                on_event: &mut dyn FnMut(Offset, &Bytes),
            ) -> Result<VerifyStep, StorageError> {
                self.verify_stream_piece(stream, from, max_records, on_event)
            }
        }
    )*};
}

pieces_by_method!(Storage, MemoryStorage);

/// Walks `stream` in pieces of `size` to the end; returns the report, the offsets handed
/// over and how many pieces paused.
fn in_pieces(
    backend: &impl Pieces,
    stream: StreamId,
    size: u64,
) -> (Result<VerifyReport, StorageError>, Vec<u64>, usize) {
    let mut handed = Vec::new();
    let mut from = None;
    let mut pauses = 0;
    loop {
        let step = backend.piece(stream, from.take(), size, &mut |offset, _| {
            handed.push(offset.as_u64());
        });
        match step {
            Ok(VerifyStep::Done(report)) => return (Ok(report), handed, pauses),
            Ok(VerifyStep::Paused(resume)) => {
                assert_eq!(resume.stream(), stream);
                assert_eq!(resume.records_checked(), handed.len() as u64);
                pauses += 1;
                from = Some(resume);
            }
            Err(error) => return (Err(error), handed, pauses),
        }
    }
}

/// Pauses a fresh walk of `stream` after `records`.
fn pause_after(backend: &impl Pieces, stream: StreamId, records: u64) -> VerifyResume {
    match backend
        .piece(stream, None, records, &mut |_, _| {})
        .unwrap()
    {
        VerifyStep::Paused(resume) => resume,
        VerifyStep::Done(report) => panic!("expected a pause, the walk ended: {report:?}"),
    }
}

fn disk_store(dir: &std::path::Path) -> Storage {
    let mut storage = Storage::open_with(dir, small_config()).unwrap();
    append_events(&mut storage, STREAM, 0, EVENTS, 37, false);
    append_events(&mut storage, OTHER, 0, 10, 5, false);
    storage
}

fn memory_store() -> MemoryStorage {
    let mut storage = MemoryStorage::with_max_segment_size(1024);
    append_events(&mut storage, STREAM, 0, EVENTS, 37, false);
    append_events(&mut storage, OTHER, 0, 10, 5, false);
    storage
}

#[test]
fn pieces_of_any_size_report_what_one_walk_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = disk_store(dir.path());
    let mut memory = memory_store();
    let whole_disk = disk.verify_stream(STREAM).unwrap();
    let whole_memory = memory.verify_stream(STREAM).unwrap();
    assert!(whole_disk.segments_checked > 1 && whole_disk.restart_records_checked > 0);
    let every_offset: Vec<u64> = (0..EVENTS).collect();
    for size in [1, 2, 7, 64, 699, 700, 701, u64::MAX] {
        let (report, handed, pauses) = in_pieces(&disk, STREAM, size);
        assert_eq!(report.unwrap(), whole_disk, "disk, pieces of {size}");
        assert_eq!(handed, every_offset, "disk, pieces of {size}");
        assert!(
            pauses as u64 >= (EVENTS - 1) / size,
            "disk, pieces of {size}"
        );
        let (report, handed, _) = in_pieces(&memory, STREAM, size);
        assert_eq!(report.unwrap(), whole_memory, "memory, pieces of {size}");
        assert_eq!(handed, every_offset, "memory, pieces of {size}");
    }
}

#[test]
fn a_piece_of_zero_records_still_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk_store(dir.path());
    let resume = pause_after(&disk, STREAM, 0);
    assert_eq!(resume.records_checked(), 1);
    let memory = memory_store();
    assert_eq!(pause_after(&memory, STREAM, 0).records_checked(), 1);
}

#[test]
fn records_appended_between_pieces_are_verified_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = disk_store(dir.path());
    let segments_before = disk.verify_stream(STREAM).unwrap().segments_checked;
    // Paused inside the active segment; the appends below rotate it more than once.
    let resume = pause_after(&disk, STREAM, EVENTS - 3);
    let (next, head) = append_events(&mut disk, STREAM, EVENTS, 200, 9, true);
    let mut handed = Vec::new();
    let step = disk
        .verify_stream_piece(STREAM, Some(resume), u64::MAX, |offset, _| {
            handed.push(offset.as_u64())
        })
        .unwrap();
    let VerifyStep::Done(report) = step else {
        panic!("an unbounded piece ends the walk")
    };
    assert_eq!(report.next_offset, next);
    assert_eq!(report.head, Some(head));
    assert!(report.segments_checked > segments_before);
    assert_eq!(report, disk.verify_stream(STREAM).unwrap());
    assert_eq!(handed, (EVENTS - 3..EVENTS + 200).collect::<Vec<_>>());

    let mut memory = memory_store();
    let resume = pause_after(&memory, STREAM, 100);
    let (next, head) = append_events(&mut memory, STREAM, EVENTS, 50, 9, false);
    let (report, _, _) = in_pieces_from(&memory, resume);
    let report = report.unwrap();
    assert_eq!((report.next_offset, report.head), (next, Some(head)));
    assert_eq!(report, memory.verify_stream(STREAM).unwrap());
}

/// Goes on from `resume` to the end in one piece.
fn in_pieces_from(
    backend: &impl Pieces,
    resume: VerifyResume,
) -> (Result<VerifyReport, StorageError>, Vec<u64>, usize) {
    let mut handed = Vec::new();
    let step = backend.piece(resume.stream(), Some(resume), u64::MAX, &mut |offset, _| {
        handed.push(offset.as_u64());
    });
    match step {
        Ok(VerifyStep::Done(report)) => (Ok(report), handed, 0),
        Ok(VerifyStep::Paused(resume)) => panic!("an unbounded piece paused: {resume:?}"),
        Err(error) => (Err(error), handed, 0),
    }
}

#[test]
fn damage_past_the_first_piece_is_found_where_one_walk_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let storage = disk_store(dir.path());
    drop(storage);
    let path = common::segment_file(dir.path(), STREAM, 5);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x08;
    std::fs::write(&path, &bytes).unwrap();

    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    let whole = storage.verify_stream(STREAM).unwrap_err();
    let damaged_at = match &whole {
        StorageError::CorruptRecord { offset, .. } => offset.as_u64(),
        other => panic!("expected a corrupt record, got {other}"),
    };
    for size in [1, 5, 16] {
        assert!(
            damaged_at > size,
            "damage at {damaged_at} is past the first piece"
        );
        let (result, handed, pauses) = in_pieces(&storage, STREAM, size);
        assert_eq!(result.unwrap_err().to_string(), whole.to_string());
        assert_eq!(handed, (0..damaged_at).collect::<Vec<_>>());
        assert_eq!(pauses as u64, damaged_at / size);
    }
}

#[test]
fn a_pause_point_is_refused_by_another_stream_or_handle() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk_store(dir.path());
    let resume = pause_after(&disk, STREAM, 100);
    let refused = |result: Result<VerifyStep, StorageError>| {
        let error = result.unwrap_err();
        assert!(
            matches!(error, StorageError::ForeignResume { .. }),
            "{error}"
        );
        assert!(!error.is_corruption(), "a usage error, not damage: {error}");
    };
    refused(disk.verify_stream_piece(OTHER, Some(resume.clone()), 10, |_, _| {}));
    refused(disk.verify_stream_piece(StreamId::new(99), Some(resume.clone()), 10, |_, _| {}));
    drop(disk);
    let reopened = Storage::open_with(dir.path(), small_config()).unwrap();
    refused(reopened.verify_stream_piece(STREAM, Some(resume.clone()), 10, |_, _| {}));
    let other_dir = tempfile::tempdir().unwrap();
    let other_disk = disk_store(other_dir.path());
    refused(other_disk.verify_stream_piece(STREAM, Some(resume.clone()), 10, |_, _| {}));

    let memory = memory_store();
    refused(memory.verify_stream_piece(STREAM, Some(resume), 10, |_, _| {}));
    let memory_resume = pause_after(&memory, STREAM, 100);
    refused(memory.verify_stream_piece(OTHER, Some(memory_resume.clone()), 10, |_, _| {}));
    refused(memory_store().verify_stream_piece(STREAM, Some(memory_resume), 10, |_, _| {}));
}
