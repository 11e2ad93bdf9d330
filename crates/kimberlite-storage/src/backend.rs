//! [`StorageBackend`]: the one interface of every storage backend.
//!
//! Method names, argument order and meaning are those of the storage contract (SPEC.md).
//! `append_batch` checks `expected_offset` and `prev_hash` against the stream's real head and
//! refuses a mismatch with a typed error, instead of trusting the caller and writing a broken
//! chain.

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

use crate::error::StorageError;
use crate::record::MAX_PAYLOAD_LEN;

/// A hash-chained, append-only store of streams.
///
/// Implemented by `MemoryStorage` (in memory), `Storage` (on disk) and `SimStorage` (on disk
/// over a simulated, fault-injecting file system). For the same sequence of calls, every
/// backend returns the same offsets, hashes, payloads and segment counts.
pub trait StorageBackend {
    /// Appends `events` to `stream_id` as one batch; returns the stream's new next offset and
    /// the chain hash of the batch's last record.
    ///
    /// `expected_offset` must be the stream's next offset (0 for a new stream) and `prev_hash`
    /// its head chain hash (`None` for a new stream); otherwise the call returns
    /// [`StorageError::UnexpectedOffset`] or [`StorageError::PrevHashMismatch`]. An event over
    /// [`crate::MAX_PAYLOAD_LEN`] returns [`StorageError::PayloadTooLarge`]. On any error the
    /// stream is exactly as before the call.
    ///
    /// With `fsync = true` the batch is durable when the call returns; backends without
    /// durability ignore it.
    ///
    /// # Panics
    ///
    /// Panics if `events` is empty: an empty batch has no last hash, and callers are expected to
    /// check (the `kimberlite` store returns an error for it).
    fn append_batch(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash), StorageError>;

    /// Reads payloads from `from_offset` on, in offset order, each verified against the chain.
    ///
    /// Stops once the payload bytes returned reach `max_bytes`; returns at least one event when
    /// one exists at `from_offset` (even for `max_bytes == 0`), so a reader paging with any
    /// budget always makes progress. An unknown stream, or an offset at or past the stream's
    /// end, reads as empty. Corruption is an error naming the stream and offset, never data.
    fn read_from(
        &mut self,
        stream_id: StreamId,
        from_offset: Offset,
        max_bytes: u64,
    ) -> Result<Vec<Bytes>, StorageError>;

    /// The chain hash of the stream's last record, `None` for an empty or unknown stream.
    fn latest_chain_hash(&mut self, stream_id: StreamId)
        -> Result<Option<ChainHash>, StorageError>;

    /// Number of segments of the stream, the active one included; 0 for an unknown stream.
    fn segment_count(&self, stream_id: StreamId) -> usize;

    /// Numbers of the stream's completed (no longer written) segments, oldest first.
    fn completed_segments(&self, stream_id: StreamId) -> Vec<u32>;

    /// Persists the backends' offset indexes (a no-op where there are none).
    fn flush_indexes(&mut self) -> Result<(), StorageError>;

    /// Drops every stream, so that one backend can serve many fuzz inputs.
    #[cfg(feature = "fuzz-reset")]
    fn reset(&mut self) -> Result<(), StorageError>;
}

/// Checks an `append_batch` call against the stream's head before anything is written;
/// returns the stream's next offset after the batch.
///
/// `head_offset` and `head_hash` are the stream's real next offset and head chain hash. Every
/// backend calls this first, so all refuse the same calls with the same errors.
pub fn check_append(
    stream_id: StreamId,
    events: &[Bytes],
    expected_offset: Offset,
    prev_hash: Option<ChainHash>,
    head_offset: Offset,
    head_hash: Option<ChainHash>,
) -> Result<Offset, StorageError> {
    if expected_offset != head_offset {
        return Err(StorageError::UnexpectedOffset {
            stream: stream_id,
            expected: expected_offset,
            actual: head_offset,
        });
    }
    if prev_hash != head_hash {
        return Err(StorageError::PrevHashMismatch {
            stream: stream_id,
            offset: head_offset,
            expected: prev_hash,
            actual: head_hash,
        });
    }
    if let Some((index, event)) = events
        .iter()
        .enumerate()
        .find(|(_, event)| event.len() > MAX_PAYLOAD_LEN)
    {
        return Err(StorageError::PayloadTooLarge {
            stream: stream_id,
            offset: Offset::new(head_offset.as_u64().saturating_add(index as u64)),
            len: event.len() as u64,
            max: MAX_PAYLOAD_LEN as u64,
        });
    }
    head_offset
        .checked_add(events.len() as u64)
        .ok_or(StorageError::OffsetOverflow {
            stream: stream_id,
            offset: head_offset,
            count: events.len() as u64,
        })
}

/// Checks the postcondition of every `append_batch`: the next offset moved forward by exactly
/// the batch length.
///
/// # Panics
///
/// Panics when it did not: offsets only move forward, and a stream's offsets are dense.
pub fn assert_offset_advanced(expected_offset: Offset, next_offset: Offset, event_count: usize) {
    assert!(
        next_offset > expected_offset,
        "offset must only advance forward after append_batch"
    );
    assert_eq!(
        next_offset.as_u64() - expected_offset.as_u64(),
        event_count as u64,
        "append_batch must advance the offset by exactly the batch length"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_advanced_by_batch_length_passes() {
        assert_offset_advanced(Offset::new(4), Offset::new(7), 3);
    }

    #[test]
    #[should_panic(expected = "offset must only advance forward")]
    fn offset_not_advanced_panics() {
        assert_offset_advanced(Offset::new(4), Offset::new(4), 0);
    }

    #[test]
    #[should_panic(expected = "exactly the batch length")]
    fn offset_advanced_by_wrong_count_panics() {
        assert_offset_advanced(Offset::new(4), Offset::new(6), 3);
    }
}
