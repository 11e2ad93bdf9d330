//! Pure in-memory implementation of [`StorageBackend`].
//!
//! Runs the whole Kimberlite stack in tests and ephemeral processes without touching disk. It is
//! not a fault-injection backend: that is `kimberlite-sim::SimStorage`.
//!
//! # What is preserved
//!
//! - **Hash-chain determinism**: records are hashed exactly as `Storage` hashes them, so the
//!   same appends give the same terminal [`ChainHash`].
//! - **Offsets**: dense, advancing by `events.len()` per batch; `expected_offset` and
//!   `prev_hash` are checked against the head as on disk ([`check_append`]).
//! - **Record format**: each event is kept as its encoded [`Record`] frame and decoded, checked
//!   against its chain link and re-hashed on every read, as on disk; batch boundaries are
//!   marked in the frames as on disk (flag bit 1), though nothing here can cut a batch short.
//! - **Notional segment rotation**: the same [`SegmentTable`] as `Storage` decides segment
//!   boundaries, so `segment_count` and `completed_segments` match the on-disk backend on the
//!   same workload. The data is not really partitioned.
//!
//! # What is dropped
//!
//! - No fsync (the argument is ignored), no persistence: a new `MemoryStorage` is empty.
//! - No files, no manifest, no mmap, no sparse index (the per-record index is in memory).
//! - No compression: every frame is stored with [`CompressionKind::None`]. The chain hash covers
//!   the uncompressed payload and rotation counts uncompressed sizes, so this changes nothing
//!   visible.
//! - No restart records: reads start from an in-memory chain hash of the previous record.
//!
//! # Cost
//!
//! Each record is its own zero-copy [`Bytes`] frame, indexed by offset next to its chain
//! hash: `read_from` costs time proportional to what it returns (never a re-walk from the
//! first record, which would make reading a stream page by page quadratic), and
//! `latest_chain_hash` is `O(1)`.
//!
//! # Assertions
//!
//! - `append_batch` asserts `!events.is_empty()` (as `Storage` does).
//! - `append_batch` asserts that the offset advanced by exactly the batch length
//!   ([`crate::backend::assert_offset_advanced`]).
//!
//! Each has a paired `#[should_panic]` test.

use std::collections::HashMap;

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{CompressionKind, Offset, RecordKind, StreamId};

use crate::backend::{
    assert_offset_advanced, batch_ends, check_append, SegmentSync, StorageBackend, StoreBackend,
};
use crate::chain::{decode_at, ChainCursor};
use crate::error::{Location, StorageError};
use crate::record::Record;
use crate::recovery_report::RecoveryReport;
use crate::rotation::SegmentTable;
use crate::stream_stats::StreamStats;
use crate::verify::VerifyReport;
use crate::verify::{VerifyResume, VerifyStep};

/// Default notional segment size in bytes (256 MiB), the same as `Storage`'s default.
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 256 * 1024 * 1024;

/// One record as held in memory.
#[derive(Debug, Clone)]
struct StoredRecord {
    /// The encoded frame; a slice of the batch's single allocation.
    frame: Bytes,
    /// The record's chain hash, computed at append.
    hash: ChainHash,
    /// Byte position of the frame in its notional segment.
    position: u64,
}

/// One stream: its records indexed by offset, and its notional segments.
#[derive(Debug, Clone, Default)]
struct StreamState {
    records: Vec<StoredRecord>,
    segments: SegmentTable,
}

impl StreamState {
    fn next_offset(&self) -> Offset {
        Offset::new(self.records.len() as u64)
    }

    fn head_hash(&self) -> Option<ChainHash> {
        self.records.last().map(|record| record.hash)
    }

    fn location(&self, offset: Offset, position: u64) -> Location {
        Location {
            segment: self
                .segments
                .segment_of(offset.as_u64())
                .map_or(0, |segment| segment.segment_num),
            position,
            file: None,
        }
    }
}

/// Pure in-memory storage backend. See the module docs for its contract.
///
/// `Send + Sync`; appends take `&mut self` and reads `&self`, so callers share it behind
/// their own lock (as the `kimberlite` store does with its `RwLock`).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use kimberlite_storage::{MemoryStorage, StorageBackend};
/// use kimberlite_types::{Offset, StreamId};
///
/// let mut storage = MemoryStorage::new();
/// let stream = StreamId::new(1);
/// let events = vec![Bytes::from_static(b"admitted"), Bytes::from_static(b"discharged")];
/// let (next, head) = storage.append_batch(stream, events, Offset::ZERO, None, false).unwrap();
/// assert_eq!(next, Offset::new(2));
/// assert_eq!(storage.latest_chain_hash(stream).unwrap(), Some(head));
/// let read = storage.read_from(stream, Offset::new(1), u64::MAX).unwrap();
/// assert_eq!(read, vec![Bytes::from_static(b"discharged")]);
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    streams: HashMap<StreamId, StreamState>,
    max_segment_size: u64,
    /// This handle's number in the pause points of its verifications (`verify::pieces`); a
    /// clone keeps it, as it keeps the records a pause point's chain hash vouches for.
    handle: u64,
}

impl MemoryStorage {
    /// An empty store with the default notional segment size ([`DEFAULT_MAX_SEGMENT_SIZE`](crate::disk::DEFAULT_MAX_SEGMENT_SIZE)).
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_segment_size(DEFAULT_MAX_SEGMENT_SIZE)
    }

    /// An empty store whose notional segments rotate at `max_segment_size` logical bytes (the
    /// rotation rule, `docs/FORMAT.md`); small values exercise rotation without writing 256 MiB.
    #[must_use]
    pub fn with_max_segment_size(max_segment_size: u64) -> Self {
        Self {
            streams: HashMap::new(),
            max_segment_size,
            handle: crate::verify::new_handle_id(),
        }
    }

    /// The notional segment size in bytes.
    #[must_use]
    pub fn max_segment_size(&self) -> u64 {
        self.max_segment_size
    }

    /// Walks every record of `stream_id` from the first, decoding, CRC-checking and linking
    /// each; an unknown stream verifies as empty.
    pub fn verify_stream(&mut self, stream_id: StreamId) -> Result<VerifyReport, StorageError> {
        self.verify_stream_with(stream_id, |_, _| {})
    }

    /// [`MemoryStorage::verify_stream`], handing each event to `on_event` in the same walk, as
    /// [`crate::Storage::verify_stream_with`] does (same order, same caveat).
    pub fn verify_stream_with(
        &self,
        stream_id: StreamId,
        on_event: impl FnMut(Offset, &Bytes),
    ) -> Result<VerifyReport, StorageError> {
        self.verify_stream_piece(stream_id, None, u64::MAX, on_event)?
            .unbounded_report(stream_id)
    }

    /// One piece of [`MemoryStorage::verify_stream_with`], as
    /// [`crate::Storage::verify_stream_piece`] (same pieces, same pause points' rules).
    pub fn verify_stream_piece(
        &self,
        stream_id: StreamId,
        from: Option<VerifyResume>,
        max_records: u64,
        mut on_event: impl FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError> {
        let (mut cursor, mut bytes_checked) = match from {
            Some(resume) => {
                resume.check_owner(self.handle, stream_id)?;
                (resume.cursor, resume.bytes)
            }
            None => (ChainCursor::at_start(stream_id), 0),
        };
        let mut segments_checked = 0;
        let mut records_left = max_records.max(1);
        if let Some(stream) = self.streams.get(&stream_id) {
            segments_checked = stream.segments.segments().len();
            let first = usize::try_from(cursor.next_offset().as_u64()).unwrap_or(usize::MAX);
            for stored in stream.records.iter().skip(first) {
                if records_left == 0 {
                    return Ok(VerifyStep::Paused(VerifyResume {
                        handle: self.handle,
                        cursor,
                        segment_index: 0,
                        position: 0,
                        restart_records: 0,
                        bytes: bytes_checked,
                    }));
                }
                let offset = cursor.next_offset();
                let location = || stream.location(offset, stored.position);
                let (record, consumed) = decode_at(stream_id, offset, &stored.frame, location)?;
                let hash = check_data_record(&mut cursor, &record, stored, location)?;
                debug_assert_eq!(hash, stored.hash);
                bytes_checked += consumed as u64;
                on_event(offset, record.payload());
                records_left -= 1;
            }
        }
        Ok(VerifyStep::Done(VerifyReport {
            stream: stream_id,
            records_checked: cursor.next_offset().as_u64(),
            restart_records_checked: 0,
            segments_checked,
            bytes_checked,
            head: cursor.prev_hash(),
            next_offset: cursor.next_offset(),
        }))
    }

    /// Replaces the frame stored for `offset` with `frame`, bypassing every check: a way for
    /// tests to model corruption of stored bytes. Returns false when no such record exists.
    #[cfg(test)]
    pub(crate) fn replace_frame(
        &mut self,
        stream_id: StreamId,
        offset: Offset,
        frame: Bytes,
    ) -> bool {
        let record = self
            .streams
            .get_mut(&stream_id)
            .and_then(|stream| stream.records.get_mut(offset.as_u64() as usize));
        match record {
            Some(record) => {
                record.frame = frame;
                true
            }
            None => false,
        }
    }

    /// Returns the stored frame of `offset` (for tests that corrupt it).
    #[cfg(test)]
    pub(crate) fn frame(&self, stream_id: StreamId, offset: Offset) -> Option<Bytes> {
        let stream = self.streams.get(&stream_id)?;
        let record = stream.records.get(offset.as_u64() as usize)?;
        Some(record.frame.clone())
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// Encodes a call's batches into one buffer, ending a batch after each offset of `ends` and
/// at the last event; returns the buffer, each frame's range in it and each record's chain
/// hash.
fn encode_batch(
    events: &[Bytes],
    ends: &[u64],
    first_offset: Offset,
    mut prev_hash: Option<ChainHash>,
) -> (Bytes, Vec<(usize, usize)>, Vec<ChainHash>) {
    let total: usize = events.iter().map(|event| event.len()).sum();
    let mut buffer = Vec::with_capacity(total + events.len() * crate::record::RECORD_OVERHEAD);
    let mut ranges = Vec::with_capacity(events.len());
    let mut hashes = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let offset = first_offset.as_u64() + index as u64;
        let ends_batch = index + 1 == events.len() || ends.binary_search(&offset).is_ok();
        let record = Record::with_compression(
            Offset::new(offset),
            prev_hash,
            RecordKind::Data,
            CompressionKind::None,
            event.clone(),
        )
        .with_batch_continues(!ends_batch);
        let start = buffer.len();
        let len = record.encode_into(&mut buffer);
        ranges.push((start, start + len));
        let hash = record.compute_hash();
        hashes.push(hash);
        prev_hash = Some(hash);
    }
    (Bytes::from(buffer), ranges, hashes)
}

/// Checks that `record`, decoded from `stored`, is the data record the cursor expects and
/// hashes to the chain hash recorded at append; advances the cursor.
fn check_data_record(
    cursor: &mut ChainCursor,
    record: &Record,
    stored: &StoredRecord,
    location: impl Fn() -> Location,
) -> Result<ChainHash, StorageError> {
    let offset = cursor.next_offset();
    if record.is_restart() {
        // MemoryStorage never writes restart records: one here is a record out of place.
        return Err(StorageError::OffsetMismatch {
            stream: cursor.stream(),
            offset,
            found: record.offset(),
            location: location(),
        });
    }
    let hash = cursor.check(record, &location)?;
    if hash != stored.hash {
        return Err(StorageError::ChainVerificationFailed {
            stream: cursor.stream(),
            offset,
            location: location(),
            expected: Some(stored.hash),
            actual: Some(hash),
        });
    }
    Ok(hash)
}

impl StorageBackend for MemoryStorage {
    fn append_batch(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash), StorageError> {
        let count = events.len();
        self.append_batches(
            stream_id,
            events,
            &[count],
            expected_offset,
            prev_hash,
            fsync,
        )
    }

    fn read_from(
        &self,
        stream_id: StreamId,
        from_offset: Offset,
        max_bytes: u64,
    ) -> Result<Vec<Bytes>, StorageError> {
        let Some(stream) = self.streams.get(&stream_id) else {
            return Ok(Vec::new());
        };
        let Some(start) = usize::try_from(from_offset.as_u64())
            .ok()
            .filter(|&start| start < stream.records.len())
        else {
            return Ok(Vec::new());
        };
        let prev_hash = start
            .checked_sub(1)
            .and_then(|prev| stream.records.get(prev))
            .map(|record| record.hash);
        let mut cursor = ChainCursor::resume(stream_id, from_offset, prev_hash);

        let mut payloads = Vec::new();
        let mut payload_bytes: u64 = 0;
        for stored in stream.records.get(start..).unwrap_or_default() {
            let offset = cursor.next_offset();
            let location = || stream.location(offset, stored.position);
            let (record, _) = decode_at(stream_id, offset, &stored.frame, location)?;
            check_data_record(&mut cursor, &record, stored, location)?;
            payload_bytes += record.payload().len() as u64;
            payloads.push(record.payload().clone());
            if payload_bytes >= max_bytes {
                break;
            }
        }
        Ok(payloads)
    }

    fn latest_chain_hash(&self, stream_id: StreamId) -> Result<Option<ChainHash>, StorageError> {
        Ok(self
            .streams
            .get(&stream_id)
            .and_then(StreamState::head_hash))
    }

    fn segment_count(&self, stream_id: StreamId) -> usize {
        self.streams
            .get(&stream_id)
            .map_or(0, |stream| stream.segments.segments().len())
    }

    fn completed_segments(&self, stream_id: StreamId) -> Vec<u32> {
        self.streams
            .get(&stream_id)
            .map_or_else(Vec::new, |stream| stream.segments.completed_segments())
    }

    fn flush_indexes(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// The report of a backend that opens nothing.
static NOTHING_RECOVERED: RecoveryReport = RecoveryReport {
    actions: Vec::new(),
    records_scanned: 0,
};

/// Memory has no files: syncs are no-ops, and nothing is recovered at open.
impl StoreBackend for MemoryStorage {
    fn append_batches(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        batch_lens: &[usize],
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        _fsync: bool,
    ) -> Result<(Offset, ChainHash), StorageError> {
        assert!(!events.is_empty(), "cannot append empty batch");
        let ends = batch_ends(expected_offset, batch_lens, events.len());
        let (head_offset, head_hash) = self
            .streams
            .get(&stream_id)
            .map_or((Offset::ZERO, None), |s| (s.next_offset(), s.head_hash()));
        check_append(
            stream_id,
            &events,
            expected_offset,
            prev_hash,
            head_offset,
            head_hash,
        )?;

        // Everything that can fail has been checked: from here on the batch is committed.
        let (buffer, ranges, hashes) = encode_batch(&events, &ends, head_offset, head_hash);
        let stream = self.streams.entry(stream_id).or_default();
        for ((event, (start, end)), hash) in events.iter().zip(ranges).zip(hashes) {
            let position = stream.segments.active().logical_size_bytes;
            stream.records.push(StoredRecord {
                frame: buffer.slice(start..end),
                hash,
                position,
            });
            stream.segments.record_appended(event.len());
        }
        stream.segments.end_batch(self.max_segment_size);

        let next_offset = stream.next_offset();
        assert_offset_advanced(expected_offset, next_offset, events.len());
        let last_hash = stream
            .head_hash()
            .expect("a non-empty batch was just appended");
        Ok((next_offset, last_hash))
    }

    fn holds(&self, stream: StreamId) -> bool {
        self.streams.contains_key(&stream)
    }

    fn streams(&self) -> Vec<StreamId> {
        let mut streams: Vec<StreamId> = self.streams.keys().copied().collect();
        streams.sort_unstable();
        streams
    }

    fn next_offset(&self, stream: StreamId) -> Result<Offset, StorageError> {
        Ok(self
            .streams
            .get(&stream)
            .map_or(Offset::ZERO, StreamState::next_offset))
    }

    fn verify_stream_piece(
        &self,
        stream: StreamId,
        from: Option<VerifyResume>,
        max_records: u64,
        on_event: &mut dyn FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError> {
        MemoryStorage::verify_stream_piece(self, stream, from, max_records, on_event)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn sync_begin(&mut self) -> Result<Vec<SegmentSync>, StorageError> {
        Ok(Vec::new())
    }

    fn sync_finished(&mut self, _done: &[SegmentSync]) {}

    fn recovery_report(&self) -> &RecoveryReport {
        &NOTHING_RECOVERED
    }

    fn stream_stats(&self, _stream: StreamId) -> Option<StreamStats> {
        None
    }
}

#[cfg(feature = "fuzz-reset")]
impl crate::backend::ResetStorage for MemoryStorage {
    fn reset(&mut self) -> Result<(), StorageError> {
        self.streams.clear();
        Ok(())
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
