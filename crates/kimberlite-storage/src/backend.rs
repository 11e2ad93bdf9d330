//! The storage contract: [`StorageBackend`], what every backend does (append, verified
//! reads, heads, segments), and [`StoreBackend`], what the `kimberlite` store needs on top of
//! it (listing streams, verification in pieces, durability in one or two phases, the recovery
//! report, statistics).
//!
//! Method names, argument order and meaning are those of SPEC.md section 2. `append_batch`
//! checks `expected_offset` and `prev_hash` against the stream's real head and refuses a
//! mismatch with a typed error ([`check_append`]), instead of trusting the caller and writing a
//! broken chain.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

use crate::disk::fs::FileHandle;
use crate::error::StorageError;
use crate::record::MAX_PAYLOAD_LEN;
use crate::recovery_report::RecoveryReport;
use crate::stream_stats::StreamStats;
use crate::transform::{transform_events, PayloadTransform};
use crate::verify::{VerifyResume, VerifyStep};

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
        &self,
        stream_id: StreamId,
        from_offset: Offset,
        max_bytes: u64,
    ) -> Result<Vec<Bytes>, StorageError>;

    /// The chain hash of the stream's last record, `None` for an empty or unknown stream.
    fn latest_chain_hash(&self, stream_id: StreamId) -> Result<Option<ChainHash>, StorageError>;

    /// Number of segments of the stream, the active one included; 0 for an unknown stream.
    fn segment_count(&self, stream_id: StreamId) -> usize;

    /// Numbers of the stream's completed (no longer written) segments, oldest first.
    fn completed_segments(&self, stream_id: StreamId) -> Vec<u32>;

    /// Persists the backends' offset indexes (a no-op where there are none).
    fn flush_indexes(&mut self) -> Result<(), StorageError>;
}

/// What the `kimberlite` store calls beyond [`StorageBackend`]: implemented by
/// `MemoryStorage` and by `Storage<F>` over every file system `F`, and object safe, so a store
/// holds its backend as a `Box<dyn StoreBackend>` whatever it runs on.
///
/// Readers share a backend (`&self`) while appends and syncs take it alone (`&mut self`);
/// the store's own lock decides which.
pub trait StoreBackend: StorageBackend + Send + Sync {
    /// [`StorageBackend::append_batch`] of several batches at once, back to back: `events`
    /// holds batches of `batch_lens[0]`, `batch_lens[1]`, ... events, in order. One call, one
    /// write and one sync, as for a single batch (group commit's merged runs), but each batch
    /// keeps its own boundary in the frames (`docs/FORMAT.md`, flag bit 1): a crash in the
    /// middle of the call leaves the batches written whole and cuts the one it interrupted.
    ///
    /// # Panics
    ///
    /// Panics if `events` is empty, or if `batch_lens` holds a zero or does not add up to
    /// `events.len()` ([`batch_ends`]).
    fn append_batches(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        batch_lens: &[usize],
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash), StorageError>;

    /// [`StorageBackend::append_batch`] of `events` changed by `transform` first: the stored
    /// payloads, hashed and read back, are the transformed events, returned with the new next
    /// offset and head. A backend that encodes in chunks on several threads transforms each
    /// chunk where it encodes it (`Storage`); this default transforms the batch, then appends
    /// it. A failed transform appends nothing here ([`StorageError::Transform`]), and fails the
    /// write (poisoning the store) where chunks are written as they are encoded.
    ///
    /// # Panics
    ///
    /// Panics if `events` is empty, as [`StorageBackend::append_batch`].
    fn append_transformed(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        transform: Arc<dyn PayloadTransform>,
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash, Vec<Bytes>), StorageError> {
        let stored = transform_events(&*transform, 0, &events).map_err(|source| {
            StorageError::Transform {
                stream: stream_id,
                source,
            }
        })?;
        let lens = [stored.len()];
        let (next, hash) = self.append_batches(
            stream_id,
            stored.clone(),
            &lens,
            expected_offset,
            prev_hash,
            fsync,
        )?;
        Ok((next, hash, stored))
    }

    /// The streams holding at least one record (or damage, or files `open` could not read),
    /// ascending.
    fn streams(&self) -> Vec<StreamId>;

    /// Whether `stream` is one of [`Self::streams`], without listing them all.
    fn holds(&self, stream: StreamId) -> bool;

    /// The stream's next offset as stored (0 for an unknown stream).
    fn next_offset(&self, stream: StreamId) -> Result<Offset, StorageError>;

    /// One piece of the verification of every record of `stream`: from the first record
    /// (`from` = `None`) or from where an earlier piece of this backend paused, at most
    /// `max_records` data records (at least one). Each event is handed to `on_event` once its
    /// frame is decoded, checksummed, hashed and linked to the one before. Returns
    /// [`VerifyStep::Paused`] with where to go on, or [`VerifyStep::Done`] with the report of
    /// the whole walk once it reaches the end of the stream.
    ///
    /// # Errors
    ///
    /// The corruption found, with its stream, offset and location;
    /// [`StorageError::ForeignResume`] for a pause point of another stream or backend.
    fn verify_stream_piece(
        &self,
        stream: StreamId,
        from: Option<VerifyResume>,
        max_records: u64,
        on_event: &mut dyn FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError>;

    /// Makes everything appended so far durable: data, and the metadata (manifests, indexes)
    /// that lets the next open skip a scan. A no-op without durability.
    fn flush(&mut self) -> Result<(), StorageError>;

    /// Makes every batch appended so far durable the way `append_batch` with `fsync = true`
    /// makes its own batch durable (segment data only), with the fewest device flushes: group
    /// commit's sync. A no-op without durability.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// The first half of a [`Self::sync`] that runs outside the caller's lock: one
    /// [`SegmentSync`] per file written since its last sync. Run each with
    /// [`SegmentSync::run`] (appends may go on meanwhile), then report those that succeeded
    /// with [`Self::sync_finished`]. A failed `SegmentSync` leaves what is durable unknown:
    /// the caller must stop appending (fail-stop), as after a failed [`Self::sync`]. Backends
    /// without files sync here and return none.
    fn sync_begin(&mut self) -> Result<Vec<SegmentSync>, StorageError>;

    /// Records the [`SegmentSync`]s of [`Self::sync_begin`] that ran successfully.
    fn sync_finished(&mut self, done: &[SegmentSync]);

    /// What opening the backend repaired or found; empty for a clean open and for backends
    /// without files.
    fn recovery_report(&self) -> &RecoveryReport;

    /// Sizes and counts of `stream` as stored; `None` for an unknown stream and for backends
    /// that keep no files (their segment counts are [`StorageBackend::segment_count`]).
    fn stream_stats(&self, stream: StreamId) -> Option<StreamStats>;

    /// Where retention cut `stream`, if it did (`docs/FORMAT.md`, "Cut record"). Backends
    /// without segment files never cut.
    fn prune_point(&self, _stream: StreamId) -> Option<crate::PrunePoint> {
        None
    }

    /// The offset a prune before `before` would cut at: rounded down to a segment boundary
    /// (`Storage::prune_boundary`).
    ///
    /// # Errors
    ///
    /// [`StorageError::PruneRefused`]: an unknown stream, `before` past the head, or a
    /// backend that keeps no segment files (the default).
    fn prune_boundary(&self, stream: StreamId, _before: Offset) -> Result<Offset, StorageError> {
        Err(StorageError::PruneRefused {
            stream,
            reason: "this backend keeps no segment files to drop".to_owned(),
        })
    }

    /// Drops the segments of `stream` below `cut` and records the cut (`Storage::prune`).
    ///
    /// # Errors
    ///
    /// As [`Self::prune_boundary`], and the corruption a walk of the dropped segments finds.
    fn prune(
        &mut self,
        stream: StreamId,
        _cut: Offset,
        _tree_frontier: Vec<[u8; 32]>,
        _checkpoint_size: u64,
    ) -> Result<crate::PrunePoint, StorageError> {
        Err(StorageError::PruneRefused {
            stream,
            reason: "this backend keeps no segment files to drop".to_owned(),
        })
    }
}

/// Test-only: a backend that forgets every stream, so that one backend can serve many fuzz
/// inputs. Compiled only with the `fuzz-reset` feature; never part of the production contract.
#[cfg(feature = "fuzz-reset")]
pub trait ResetStorage: StorageBackend {
    /// Drops every stream.
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
    let lens = events.iter().map(Bytes::len);
    let head = (head_offset, head_hash);
    check_append_lens(stream_id, lens, expected_offset, prev_hash, head)
}

/// [`check_append`] given the events' lengths as they will be stored.
pub fn check_append_lens(
    stream_id: StreamId,
    lens: impl ExactSizeIterator<Item = usize>,
    expected_offset: Offset,
    prev_hash: Option<ChainHash>,
    (head_offset, head_hash): (Offset, Option<ChainHash>),
) -> Result<Offset, StorageError> {
    let count = lens.len() as u64;
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
    if let Some((index, len)) = lens.enumerate().find(|(_, len)| *len > MAX_PAYLOAD_LEN) {
        return Err(StorageError::PayloadTooLarge {
            stream: stream_id,
            offset: Offset::new(head_offset.as_u64().saturating_add(index as u64)),
            len: len as u64,
            max: MAX_PAYLOAD_LEN as u64,
        });
    }
    head_offset
        .checked_add(count)
        .ok_or(StorageError::OffsetOverflow {
            stream: stream_id,
            offset: head_offset,
            count,
        })
}

/// The offsets of the data records that end a batch before the last of `event_count` events
/// from `first_offset` on, split into batches of `batch_lens` ([`StoreBackend::append_batches`]).
///
/// # Panics
///
/// Panics if a length is zero or the lengths do not add up to `event_count`: the caller's
/// bug, which would otherwise mark a boundary inside another writer's batch.
#[must_use]
pub fn batch_ends(first_offset: Offset, batch_lens: &[usize], event_count: usize) -> Vec<u64> {
    assert!(
        !batch_lens.contains(&0) && batch_lens.iter().sum::<usize>() == event_count,
        "batch lengths {batch_lens:?} must be non-zero and add up to the {event_count} events"
    );
    let mut end = first_offset.as_u64();
    let mut ends = Vec::with_capacity(batch_lens.len().saturating_sub(1));
    for len in batch_lens.iter().take(batch_lens.len().saturating_sub(1)) {
        end += *len as u64;
        ends.push(end - 1);
    }
    ends
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

/// One active segment to sync outside the store's lock ([`StoreBackend::sync_begin`]).
pub struct SegmentSync {
    pub(crate) stream: StreamId,
    pub(crate) segment_num: u32,
    pub(crate) len: u64,
    pub(crate) path: PathBuf,
    /// Its own handle on the file (boxed: the store holds backends of any file system).
    pub(crate) file: Box<dyn FileHandle>,
}

impl SegmentSync {
    /// `fdatasync`s the segment (through its own handle: the sync covers the file, whichever
    /// handle wrote it).
    pub fn run(&mut self) -> Result<(), StorageError> {
        self.file.sync_data().map_err(|source| StorageError::Io {
            context: format!("on {}", self.path.display()),
            source,
        })
    }
}

impl std::fmt::Debug for SegmentSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentSync")
            .field("stream", &self.stream)
            .field("segment_num", &self.segment_num)
            .field("len", &self.len)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ends_are_the_last_offsets_of_every_batch_but_the_last() {
        assert_eq!(batch_ends(Offset::new(10), &[3], 3), Vec::<u64>::new());
        assert_eq!(batch_ends(Offset::new(10), &[3, 1, 2], 6), vec![12, 13]);
    }

    #[test]
    #[should_panic(expected = "must be non-zero and add up")]
    fn batch_lengths_that_do_not_add_up_panic() {
        let _ = batch_ends(Offset::ZERO, &[3, 1], 5);
    }

    #[test]
    #[should_panic(expected = "must be non-zero and add up")]
    fn an_empty_batch_among_several_panics() {
        let _ = batch_ends(Offset::ZERO, &[3, 0, 2], 5);
    }

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
