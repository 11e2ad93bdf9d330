//! Encoding and writing one batch: the store's encoder hands its frames over in chunks
//! (`crate::encode`; encoded on the shared encode helper too, for large batches), and this
//! thread links each chunk to the chain, in order, and writes it.
//!
//! Where restart records go is decided here, before any frame is encoded ([`BatchPlan`]). Linked
//! bytes go to the file whenever [`WRITE_CHUNK_BYTES`] have built up, up to the last multiple
//! of [`WRITE_CHUNK_BYTES`] in the file ([`aligned_write_len`]), and the rest at the end, so
//! the `write` of the first part of a large batch overlaps the encoding of the next. When the
//! writes happen depends on the encoded bytes alone, never on which thread encoded: the file
//! system (and the simulator, which injects faults into each call) sees the same calls either
//! way.
//!
//! Preserved: every frame of the batch is written before it is acknowledged, `fsync = true`
//! syncs once after the last write, and a failed write or sync cuts the file back to where the
//! batch began (best effort; the caller poisons the store either way), so a failed batch
//! leaves nothing behind. A batch of more than [`WRITE_CHUNK_BYTES`] is several `write`
//! calls; a crash can leave any prefix of an unsynced batch either way, and recovery handles
//! that (the torn-tail rows of `recovery`'s decision table). Nothing in memory changes here:
//! the caller commits what this returns.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{CompressionKind, StreamId};

use super::allocate::range_to_allocate;
use super::fs::{FileHandle, FileSystem};
use super::index::SeenRecord;
use super::restart::{restart_due, restart_payload};
use super::storage::Storage;
use super::stream::io_error;
use crate::encode::{BatchPlan, EncodedChunk};
use crate::error::StorageError;
use crate::transform::PayloadTransform;

/// Encoded bytes that are written without waiting for the rest of the batch (what is left
/// after the last chunk is written at the end); the size the `append_nosync` bench chose
/// (docs/PERFORMANCE.md, section "Design decisions").
pub const WRITE_CHUNK_BYTES: usize = 64 * 1024;

/// How many of the `buffered` bytes that go at file position `position` to write now: those
/// up to the last multiple of [`WRITE_CHUNK_BYTES`] in the file (none if they cross none).
///
/// Why aligned: the page cache holds a file in folios of up to [`WRITE_CHUNK_BYTES`] and more
/// only where the file position is aligned to their size, so 64 KiB writes starting anywhere
/// fill it a 4 KiB page at a time (docs/PERFORMANCE.md, section "Design decisions").
#[must_use]
pub fn aligned_write_len(position: u64, buffered: usize) -> usize {
    let end = position.saturating_add(buffered as u64);
    let cut = end - end % WRITE_CHUNK_BYTES as u64;
    usize::try_from(cut.saturating_sub(position)).map_or(buffered, |len| len.min(buffered))
}

/// The restart records a batch of `count` events from `first_offset` on needs, in a segment that
/// starts at `segment_first_offset` (number `segment_num`) and whose last restart record so far is
/// at `last_restart`.
fn planned_restarts(
    interval: u64,
    first_offset: u64,
    count: usize,
    segment_first_offset: u64,
    segment_num: u32,
    mut last_restart: Option<u64>,
) -> Vec<(u64, Bytes)> {
    let mut restart_records = Vec::new();
    for offset in (first_offset..).take(count) {
        if restart_due(interval, offset, segment_first_offset, last_restart) {
            let records = offset - segment_first_offset;
            restart_records.push((offset, restart_payload(segment_num, records)));
            last_restart = Some(offset);
        }
    }
    restart_records
}

/// Where linked frames go: the batch's write buffer, what each frame is, and the file
/// position of the next `write`.
struct BatchWriter<'a> {
    buffer: &'a mut Vec<u8>,
    write_position: u64,
    seen: Vec<SeenRecord>,
    /// How far the segment's blocks are allocated (`allocate`).
    allocated_to: u64,
    max_segment_size: u64,
}

impl BatchWriter<'_> {
    /// Appends a linked chunk to the buffer.
    fn push(&mut self, chunk: &EncodedChunk) {
        let base = self.write_position + self.buffer.len() as u64;
        for frame in &chunk.frames {
            self.seen.push(SeenRecord {
                is_restart: frame.is_restart,
                offset: frame.offset,
                position: base + frame.unlinked.start as u64,
                frame_len: frame.unlinked.len as u64,
                payload_len: frame.payload_len,
                compressed: frame.unlinked.compressed,
            });
        }
        self.buffer.extend_from_slice(&chunk.bytes);
    }

    /// Writes what the buffer holds at `write_position` and moves past it.
    fn write_out(&mut self, file: &mut impl FileHandle) -> io::Result<()> {
        self.write_front(file, self.buffer.len())
    }

    /// Writes the part of the buffer that ends at the last multiple of [`WRITE_CHUNK_BYTES`]
    /// in the file (nothing if it holds none) and keeps the rest for the next write.
    fn write_aligned(&mut self, file: &mut impl FileHandle) -> io::Result<()> {
        let len = aligned_write_len(self.write_position, self.buffer.len());
        self.write_front(file, len)
    }

    /// Writes the buffer's first `len` bytes at `write_position` and moves past them.
    fn write_front(&mut self, file: &mut impl FileHandle, len: usize) -> io::Result<()> {
        let Some(front) = self.buffer.get(..len).filter(|front| !front.is_empty()) else {
            return Ok(());
        };
        let end = self.write_position + len as u64;
        if let Some((start, to)) = range_to_allocate(
            self.write_position,
            end,
            self.allocated_to,
            self.max_segment_size,
        ) {
            file.allocate_ahead(start, to);
            self.allocated_to = to;
        }
        file.write_all_at(front, self.write_position)?;
        self.write_position = end;
        self.buffer.drain(..len);
        Ok(())
    }
}

impl<F: FileSystem> Storage<F> {
    /// Encodes `events` (the batch for stream `id`, which exists and is not damaged, after
    /// its head, ending batches after the offsets in `batch_ends` and at its last event), links
    /// them to the chain and writes them at the end of its active segment, syncing with `fsync`. Returns what each frame is and the chain hash of the last event.
    /// With a `transform`, each chunk's events are transformed before they are encoded and
    /// pushed, as stored, to `stored`; a failed transform fails the write.
    /// On error the file is cut back to where the batch began.
    pub(super) fn write_batch(
        &mut self,
        id: StreamId,
        events: Vec<Bytes>,
        batch_ends: Vec<u64>,
        fsync: bool,
        transform: Option<Arc<dyn PayloadTransform>>,
        stored: &mut Vec<Bytes>,
    ) -> Result<(Vec<SeenRecord>, Option<ChainHash>), StorageError> {
        let Self {
            streams,
            buffer,
            encoder,
            config,
            ..
        } = self;
        let missing = || StorageError::Poisoned {
            context: format!("stream {id} has no active segment at append"),
        };
        let state = streams.get_mut(&id).ok_or_else(missing)?;
        let active = state.segments.last().ok_or_else(missing)?;
        let segment = *state.table.active();
        let plan = BatchPlan {
            first_offset: segment.next_offset,
            head_present: state.head.is_some(),
            // Trying a codec on a transform's incompressible output never pays.
            compression: match &transform {
                Some(transform) if transform.incompressible() => CompressionKind::None,
                _ => config.compression,
            },
            restart_records: planned_restarts(
                config.restart_interval,
                segment.next_offset,
                events.len(),
                segment.first_offset,
                segment.segment_num,
                active.index.last_restart(),
            ),
            batch_ends,
        };
        let path = active.path.clone();
        let base = active.index.summary.len_bytes;
        buffer.clear();
        let mut writer = BatchWriter {
            buffer,
            write_position: base,
            seen: Vec::with_capacity(events.len() + 1),
            allocated_to: state.allocated_to,
            max_segment_size: config.max_segment_size,
        };
        let mut head = state.head;
        let active_file = &mut state.active;
        let mut result = encoder.encode(events, plan, config.hash_ahead, transform, |chunk| {
            if let Some(error) = chunk.failed.take() {
                return Err(io::Error::other(error));
            }
            stored.append(&mut chunk.stored);
            head = chunk.link(head);
            writer.push(chunk);
            if writer.buffer.len() >= WRITE_CHUNK_BYTES {
                writer.write_aligned(active_file)
            } else {
                Ok(())
            }
        });
        if result.is_ok() {
            result = writer.write_out(&mut state.active);
        }
        if fsync && result.is_ok() {
            result = state.active.sync_data();
        }
        if let Err(source) = result {
            // Best effort: cut the partial batch off so a reopen does not find it. The store
            // is poisoned by the caller either way.
            let _ = state.active.set_len(base);
            return Err(io_error(&path, source));
        }
        state.allocated_to = writer.allocated_to;
        if fsync {
            state.synced_len = writer.write_position;
        }
        Ok((writer.seen, head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: u64 = WRITE_CHUNK_BYTES as u64;

    #[test]
    fn a_write_ends_at_the_last_chunk_boundary_it_crosses() {
        // From an aligned start: whole chunks only.
        assert_eq!(aligned_write_len(0, 70_000), WRITE_CHUNK_BYTES);
        assert_eq!(
            aligned_write_len(CHUNK, 3 * WRITE_CHUNK_BYTES + 5),
            3 * WRITE_CHUNK_BYTES
        );
        // From anywhere: up to the boundary, the rest kept.
        assert_eq!(
            aligned_write_len(CHUNK - 100, 70_000),
            100 + WRITE_CHUNK_BYTES
        );
        assert_eq!(aligned_write_len(5_949_352, 80_000), 6_029_312 - 5_949_352);
        // Ending exactly on a boundary writes everything.
        assert_eq!(
            aligned_write_len(10, WRITE_CHUNK_BYTES - 10),
            WRITE_CHUNK_BYTES - 10
        );
    }

    #[test]
    fn a_buffer_that_crosses_no_boundary_waits() {
        assert_eq!(aligned_write_len(1, WRITE_CHUNK_BYTES - 2), 0);
        assert_eq!(aligned_write_len(CHUNK + 1, 0), 0);
        assert_eq!(aligned_write_len(0, 0), 0);
    }

    #[test]
    fn positions_near_the_end_of_the_range_do_not_overflow() {
        assert_eq!(aligned_write_len(u64::MAX - 10, 100), 0);
        let last_boundary = u64::MAX - u64::MAX % CHUNK;
        assert_eq!(aligned_write_len(last_boundary - 4, 100), 4);
    }
}
