//! Encoding and writing one batch, behind the chain hashes of a [`ChainJob`].
//!
//! The frames are encoded chunk by chunk as the job's hashes come in (computed by the store's
//! [`crate::chain_worker::ChainWorker`] for large batches, on this thread otherwise), with
//! checkpoints inserted where due. Encoded bytes go to the file whenever
//! [`WRITE_CHUNK_BYTES`] have built up, and the rest at the end, so the `write` of the first
//! part of a large batch overlaps the hashing of the next. When the writes happen depends on
//! the encoded bytes alone, never on which thread hashed: the file system (and the simulator,
//! which injects faults into each call) sees the same calls either way.
//!
//! Preserved: every frame of the batch is written before it is acknowledged, `fsync = true`
//! syncs once after the last write, and a failed write or sync cuts the file back to where the
//! batch began (best effort; the caller poisons the store either way), so a failed batch
//! leaves nothing behind. Dropped: a batch of more than [`WRITE_CHUNK_BYTES`] is no longer one
//! `write` call; a crash could always leave any prefix of an unsynced batch, and recovery
//! handles that (the torn-tail rows of `recovery`'s decision table). Nothing in memory changes
//! here: the caller commits what this returns.

use std::io;

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{CompressionKind, Offset, RecordKind, StreamId};

use super::checkpoint::{checkpoint_due, checkpoint_record};
use super::fs::{FileHandle, FileSystem};
use super::index::SeenRecord;
use super::storage::Storage;
use super::stream::io_error;
use crate::chain_worker::ChainJob;
use crate::error::StorageError;
use crate::record::{Record, RECORD_OVERHEAD};

/// Position of the compression byte in a record frame (see `crate::record`).
const FRAME_COMPRESSION_AT: usize = 6;

/// Encoded bytes that are written without waiting for the rest of the batch. Measured with the
/// `append_nosync` bench (1,000 x 256 B, hashed ahead): 128 KiB 258-260 us per batch, 64 KiB
/// 248-257, 32 KiB 245 but LZ4 batches and inline-hashed ones slower (each `write` that
/// extends the file costs ~7 µs here); the bytes left after the last hash are the tail.
pub const WRITE_CHUNK_BYTES: usize = 64 * 1024;

/// Turns events and their hashes into frames, remembering what each frame is and where it
/// goes.
struct FrameEncoder {
    /// File position where the next `write` of the buffer goes (the batch's start at first).
    write_position: u64,
    segment_first_offset: u64,
    segment_num: u32,
    checkpoint_interval: u64,
    compression: CompressionKind,
    next_offset: u64,
    last_checkpoint: Option<u64>,
    prev: Option<ChainHash>,
    seen: Vec<SeenRecord>,
}

impl FrameEncoder {
    fn encode(&mut self, buffer: &mut Vec<u8>, events: &[Bytes], hashes: &[ChainHash]) {
        debug_assert_eq!(events.len(), hashes.len());
        for (event, hash) in events.iter().zip(hashes) {
            let offset = self.next_offset;
            if checkpoint_due(
                self.checkpoint_interval,
                offset,
                self.segment_first_offset,
                self.last_checkpoint,
            ) {
                let records = offset - self.segment_first_offset;
                let checkpoint = checkpoint_record(offset, self.prev, self.segment_num, records);
                self.push(buffer, &checkpoint);
                self.last_checkpoint = Some(offset);
            }
            let record = Record::with_compression(
                Offset::new(offset),
                self.prev,
                RecordKind::Data,
                self.compression,
                event.clone(),
            );
            self.push(buffer, &record);
            self.prev = Some(*hash);
            self.next_offset += 1;
        }
    }

    fn push(&mut self, buffer: &mut Vec<u8>, record: &Record) {
        let start = buffer.len();
        let frame_len = record.encode_into(buffer) as u64;
        let compressed = buffer
            .get(start + FRAME_COMPRESSION_AT)
            .is_some_and(|&byte| byte != CompressionKind::None.as_byte());
        debug_assert!(frame_len >= RECORD_OVERHEAD as u64);
        self.seen.push(SeenRecord {
            is_checkpoint: record.is_checkpoint(),
            offset: record.offset().as_u64(),
            position: self.write_position + start as u64,
            frame_len,
            payload_len: record.payload().len(),
            compressed,
        });
    }

    /// Writes what the buffer holds at `write_position` and moves past it.
    fn write_out(&mut self, file: &mut impl FileHandle, buffer: &mut Vec<u8>) -> io::Result<()> {
        if !buffer.is_empty() {
            file.write_all_at(buffer, self.write_position)?;
            self.write_position += buffer.len() as u64;
            buffer.clear();
        }
        Ok(())
    }
}

impl<F: FileSystem> Storage<F> {
    /// Encodes the events of `job` (the batch for stream `id`, which exists and is not
    /// damaged, hashed after its head) and writes them with one `write` at the end of its
    /// active segment, syncing with `fsync`. Returns what each frame is and the chain hash of
    /// the last event. On error the file is cut back to where the batch began.
    pub(super) fn write_batch(
        &mut self,
        id: StreamId,
        job: &ChainJob,
        fsync: bool,
    ) -> Result<(Vec<SeenRecord>, Option<ChainHash>), StorageError> {
        let Self {
            streams,
            buffer,
            config,
            ..
        } = self;
        let missing = || StorageError::Poisoned {
            context: format!("stream {id} has no active segment at append"),
        };
        let state = streams.get_mut(&id).ok_or_else(missing)?;
        let active = state.segments.last().ok_or_else(missing)?;
        let segment = *state.table.active();
        let mut encoder = FrameEncoder {
            write_position: active.index.summary.len_bytes,
            segment_first_offset: segment.first_offset,
            segment_num: segment.segment_num,
            checkpoint_interval: config.checkpoint_interval,
            compression: config.compression,
            next_offset: segment.next_offset,
            last_checkpoint: active.index.last_checkpoint(),
            prev: state.head,
            seen: Vec::with_capacity(job.events().len() + 1),
        };
        let path = active.path.clone();
        buffer.clear();
        let base = encoder.write_position;
        let mut result = Ok(());
        for chunk in 0..job.chunk_count() {
            encoder.encode(buffer, job.chunk_events(chunk), job.hashes(chunk));
            if buffer.len() >= WRITE_CHUNK_BYTES {
                result = encoder.write_out(&mut state.active, buffer);
                if result.is_err() {
                    break;
                }
            }
        }
        if result.is_ok() {
            result = encoder.write_out(&mut state.active, buffer);
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
        if fsync {
            state.synced_len = encoder.write_position;
        }
        Ok((encoder.seen, encoder.prev))
    }
}
