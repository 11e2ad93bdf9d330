//! The Raft log file: replay of entries, truncations, purges and votes; a torn last record
//! cut; a damaged record before intact ones refused; the rewrite after purges.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use kimberlite_storage::FileSystem;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};

use crate::command::{Command, Head, RequestId};
use crate::journal_file::Journal;
use crate::log_file::{LogFile, LogFileError, LogRecord, LogState, LOG_FILE};
use crate::types::TypeConfig;

pub(crate) fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

pub(crate) fn entry(index: u64) -> LogRecord {
    LogRecord::Entry(Entry::<TypeConfig> {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Command::CreateStream {
            request: RequestId {
                client: 1,
                seq: index,
            },
            name: format!("s{index}"),
        }),
    })
}

/// The indexes of the live entries in `state`.
pub(crate) fn keys(state: &LogState) -> Vec<u64> {
    state.entries.keys().copied().collect()
}

fn indexes(dir: &Path) -> Vec<u64> {
    let (_, state) = LogFile::open(dir, false).unwrap();
    keys(&state)
}

/// Writes `records` to a new log file in `dir` and closes it; returns the file's path.
fn write_log(dir: &Path, records: &[LogRecord]) -> PathBuf {
    let (mut file, _) = LogFile::open(dir, true).unwrap();
    file.append(records).unwrap();
    drop(file);
    dir.join(LOG_FILE)
}

/// Rewrites the file at `path` with `change` applied to its bytes.
fn alter(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
}

/// Appends `bytes` to the file at `path` past the log file's own writes.
fn append_raw(path: &Path, bytes: &[u8]) {
    let mut raw = OpenOptions::new().append(true).open(path).unwrap();
    raw.write_all(bytes).unwrap();
}

/// Asserts that opening the log in `dir` is refused for a damaged first record.
fn assert_corrupt_from_start(dir: &Path) {
    let error = LogFile::open(dir, true).unwrap_err();
    assert!(
        matches!(error, LogFileError::Corrupt { position: 0, .. }),
        "{error}"
    );
}

/// Appends entries 1 to 100 one record at a time, then a purge up to 95, to `file` and `state`:
/// 101 records for 5 live entries, enough for a rewrite.
pub(crate) fn append_100_purge_95<F: FileSystem>(file: &mut LogFile<F>, state: &mut LogState) {
    let purge = LogRecord::Purge(log_id(95));
    for record in (1..=100).map(entry).chain([purge]) {
        file.append(std::slice::from_ref(&record)).unwrap();
        state.apply(record);
    }
}

#[test]
fn replay_applies_truncations_purges_and_votes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut file, _) = LogFile::open(dir.path(), true).unwrap();
    file.append(&[entry(1), entry(2), entry(3), entry(4)])
        .unwrap();
    file.append(&[LogRecord::Truncate(3), entry(3)]).unwrap();
    file.append(&[
        LogRecord::Purge(log_id(1)),
        LogRecord::Vote(Vote::new(2, 5)),
    ])
    .unwrap();
    drop(file);
    let (_, state) = LogFile::open(dir.path(), true).unwrap();
    assert_eq!(keys(&state), [2, 3]);
    assert_eq!(state.purged, Some(log_id(1)));
    assert_eq!(state.vote, Some(Vote::new(2, 5)));
}

#[test]
fn a_torn_last_record_is_cut_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), &[entry(1), entry(2)]);
    let len = std::fs::metadata(&path).unwrap().len();
    // Half of a third record: a write the crash interrupted.
    let mut torn = Vec::new();
    crate::journal_file::encode_for_tests(&entry(3), &mut torn).unwrap();
    append_raw(&path, &torn[..torn.len() / 2]);
    assert_eq!(indexes(dir.path()), [1, 2]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    let (mut file, _) = LogFile::open(dir.path(), true).unwrap();
    file.append(&[entry(3)]).unwrap();
    assert_eq!(indexes(dir.path()), [1, 2, 3]);
}

#[test]
fn a_bad_checksum_on_the_last_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), &[entry(1), entry(2)]);
    alter(&path, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    });
    assert_eq!(indexes(dir.path()), [1]);
}

#[test]
fn a_damaged_record_before_intact_ones_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), &[entry(1), entry(2)]);
    alter(&path, |bytes| bytes[10] ^= 1);
    assert_corrupt_from_start(dir.path());
}

#[test]
fn a_damaged_length_is_refused_not_taken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), &[entry(1), entry(2)]);
    // The first record's length now points far past the end of the file.
    alter(&path, |bytes| bytes[3] ^= 0x40);
    assert_corrupt_from_start(dir.path());
}

#[test]
fn zeros_after_the_last_record_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), &[entry(1)]);
    append_raw(&path, &[0; 100]);
    assert_eq!(indexes(dir.path()), [1]);
}

#[test]
fn purges_make_the_file_rewritten_with_the_live_state_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut file, mut state) = LogFile::open(dir.path(), true).unwrap();
    append_100_purge_95(&mut file, &mut state);
    assert!(file.wants_rewrite(&state));
    let before = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
    file.rewrite(&state).unwrap();
    assert!(!file.wants_rewrite(&state));
    assert!(std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len() < before / 5);
    file.append(&[entry(101)]).unwrap();
    drop(file);
    let (_, replayed) = LogFile::open(dir.path(), true).unwrap();
    assert_eq!(keys(&replayed), (96..=101).collect::<Vec<_>>());
    assert_eq!(replayed.purged, Some(log_id(95)));
}

/// An entry at `index` appending `events` to stream 1, from `client` (its request `index`).
fn append_to_stream_1(index: u64, client: u64, events: Vec<bytes::Bytes>) -> Entry<TypeConfig> {
    Entry::<TypeConfig> {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Command::Append {
            request: RequestId { client, seq: index },
            stream: 1,
            prev: Head::default(),
            read_at: 0,
            expected: Head::default().after(&events),
            events,
        }),
    }
}

/// An entry appending `count` events of `bytes` bytes each.
pub(crate) fn append_entry(index: u64, count: usize, bytes: usize) -> Entry<TypeConfig> {
    let events = (0..count)
        .map(|i| bytes::Bytes::from(vec![(i % 251) as u8; bytes]))
        .collect();
    append_to_stream_1(index, 2, events)
}

#[test]
fn a_batch_is_written_as_its_raw_bytes_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut file, _) = LogFile::open(dir.path(), true).unwrap();
    let batch = append_entry(1, 1_000, 256);
    file.append(&[LogRecord::Entry(batch.clone())]).unwrap();
    drop(file);
    // Events as raw bytes, each with a length of a few bytes: not hex, not twice the size.
    let len = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
    assert!(
        len < 1_000 * 256 + 8 * 1_024,
        "{len} bytes for 256,000 of events"
    );
    let (_, state) = LogFile::open(dir.path(), true).unwrap();
    assert_eq!(state.entries.get(&1), Some(&batch));
}

#[test]
fn a_file_of_json_records_is_still_read_and_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE);
    // A file as the JSON encoding wrote it: a vote, an entry of events, a create.
    let old = [
        LogRecord::Vote(Vote::new(3, 1)),
        LogRecord::Entry(append_entry(1, 3, 5)),
        entry(2),
    ];
    let mut bytes = Vec::new();
    for record in &old {
        let body = serde_json::to_vec(record).unwrap();
        assert_eq!(body.first(), Some(&b'{'));
        crate::journal_file::frame_for_tests(&body, &mut bytes).unwrap();
    }
    std::fs::write(&path, &bytes).unwrap();
    let (mut file, state) = LogFile::open(dir.path(), true).unwrap();
    assert_eq!(state.vote, Some(Vote::new(3, 1)));
    assert_eq!(state.entries.get(&1), Some(&append_entry(1, 3, 5)));
    assert_eq!(state.entries.keys().copied().collect::<Vec<_>>(), [1, 2]);
    // New records go after them in the binary encoding; the file mixes both and replays.
    file.append(&[entry(3)]).unwrap();
    drop(file);
    assert_eq!(indexes(dir.path()), [1, 2, 3]);
    assert!(std::fs::metadata(&path).unwrap().len() as usize > bytes.len());
}

#[test]
fn a_whole_record_in_an_unknown_encoding_is_refused_naming_the_file_never_cut() {
    for last in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), &[entry(1)]);
        let mut bytes = std::fs::read(&path).unwrap();
        let position = bytes.len() as u64;
        // A record another version might write: its checksum is good, its first byte unknown.
        crate::journal_file::frame_for_tests(&[0x02, 1, 2, 3], &mut bytes).unwrap();
        if !last {
            crate::journal_file::encode_for_tests(&entry(2), &mut bytes).unwrap();
        }
        std::fs::write(&path, &bytes).unwrap();
        let error = LogFile::open(dir.path(), true).unwrap_err();
        match &error {
            LogFileError::UnknownEncoding {
                path: named,
                position: at,
                first_byte: 0x02,
            } => {
                assert_eq!(named, &path);
                assert_eq!(*at, position);
            }
            other => panic!("{other}"),
        }
        assert!(error.to_string().contains(LOG_FILE), "{error}");
        // Nothing was cut: the file is as it was.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
}

/// A record of 1,000 events of 256 bytes each, from client 1.
fn batch_entry(index: u64) -> LogRecord {
    let events = vec![bytes::Bytes::from(vec![7u8; 256]); 1_000];
    LogRecord::Entry(append_to_stream_1(index, 1, events))
}

/// One write's encoding buffer is the next one's: a fresh buffer per batch faulted in fresh
/// pages each time.
#[test]
fn writes_reuse_one_encoding_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let (mut file, _) = LogFile::open(dir.path(), false).unwrap();
    file.append(&[batch_entry(1)]).unwrap();
    let (kept, capacity) = file.scratch();
    assert!(capacity > 256_000, "{capacity}");
    file.append(&[batch_entry(2)]).unwrap();
    assert_eq!(file.scratch(), (kept, capacity));
    assert_eq!(indexes(dir.path()), [1, 2]);
}

/// A record is encoded into one allocation of its size, not grown by doubling (each step a copy
/// of the events so far, into fresh pages).
#[test]
fn a_batch_record_is_encoded_into_room_reserved_for_it() {
    let record = batch_entry(1);
    let mut buffer = Vec::new();
    crate::journal_file::encode_for_tests(&record, &mut buffer).unwrap();
    assert!(buffer.len() > 256_000);
    assert_eq!(buffer.capacity(), buffer.len());
}

#[test]
fn the_live_entries_event_bytes_follow_appends_truncations_purges_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (mut file, state) = LogFile::open(dir.path(), true).unwrap();
    assert_eq!(state.entry_bytes, 0);
    let mut expected = LogState::default();
    let records = [
        LogRecord::Entry(append_entry(1, 10, 100)),
        entry(2),
        LogRecord::Entry(append_entry(3, 3, 7)),
        LogRecord::Entry(append_entry(4, 2, 50)),
    ];
    for record in records.iter().cloned() {
        expected.apply(record);
    }
    assert_eq!(expected.entry_bytes, 1_000 + 21 + 100);
    // An entry written again at its index replaces the old one's bytes.
    expected.apply(LogRecord::Entry(append_entry(4, 1, 5)));
    assert_eq!(expected.entry_bytes, 1_000 + 21 + 5);
    expected.apply(LogRecord::Truncate(4));
    assert_eq!(expected.entry_bytes, 1_021);
    expected.apply(LogRecord::Purge(log_id(1)));
    assert_eq!(expected.entry_bytes, 21);
    expected.apply(LogRecord::Purge(log_id(3)));
    assert_eq!(expected.entry_bytes, 0);

    file.append(&records).unwrap();
    file.append(&[LogRecord::Truncate(4), LogRecord::Purge(log_id(1))])
        .unwrap();
    drop(file);
    let (_, replayed) = LogFile::open(dir.path(), true).unwrap();
    assert_eq!(keys(&replayed), [2, 3]);
    assert_eq!(replayed.entry_bytes, 21);
}
