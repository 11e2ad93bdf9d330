//! A batch's frames, encoded in chunks that do not depend on each other and linked into the
//! chain in order.
//!
//! Appending a batch is mostly work that does not depend on the chain: hashing each payload
//! (all of a record's chain hash but its last block or two), compressing it, copying it into a
//! frame, and the CRC of that frame. The record format puts the link to the previous record
//! *last* in both the chain hash and the frame (`docs/FORMAT.md`), so all of that is done per
//! chunk of [`CHUNK_EVENTS`] events, independently of every other chunk ([`encode_chunk`]):
//! an [`EncodedChunk`] of unlinked frames and [`UnlinkedHash`]es. What must follow the chain,
//! one record after another, is small: finish each hash with its predecessor's and write that
//! predecessor into the frame with the end of the CRC ([`EncodedChunk::link`]).
//!
//! [`encode_chunk`] is pure: the same bytes whichever thread calls it. It is the one-thread
//! reference that `crate::parallel` (several threads sharing a batch's chunks) is tested
//! against.

use bytes::Bytes;
use kimberlite_crypto::{ChainHash, UnlinkedHash};
use kimberlite_types::{CompressionKind, Offset, RecordKind};

use crate::record::{encode_unlinked, UnlinkedFrame, RECORD_OVERHEAD};

/// Events per chunk: small enough that the appender starts linking and writing early, large
/// enough that claiming and signalling a chunk between threads are noise.
pub(crate) const CHUNK_EVENTS: usize = 64;

/// Everything about a batch's frames that is known before its first hash: where it starts,
/// whether its first record has a predecessor, the codec, and the restart records to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchPlan {
    /// Offset of the batch's first event.
    pub first_offset: u64,
    /// Whether the stream has a record before the batch (its head hash is `Some`).
    pub head_present: bool,
    /// Codec asked for the data records (each is stored compressed only if that is smaller).
    pub compression: CompressionKind,
    /// Restart records, by increasing offset: `(offset, payload)` is a restart record written
    /// just before the data record at `offset`, which must be one of the batch's offsets.
    pub restart_records: Vec<(u64, Bytes)>,
    /// Offsets, ascending, of the data records that end a batch before the call's last event
    /// (which always ends one): the boundaries of the writers' batches that one call writes
    /// back to back (group commit). Empty for a call of one batch.
    pub batch_ends: Vec<u64>,
}

impl BatchPlan {
    /// Whether the data record at `offset`, of a call whose last event is at `last`, is
    /// followed by more frames of its batch (flag bit 1, `docs/FORMAT.md`).
    #[must_use]
    pub fn continues_batch(&self, offset: u64, last: u64) -> bool {
        offset != last && self.batch_ends.binary_search(&offset).is_err()
    }
}

/// One frame of an [`EncodedChunk`]: encoded, not yet linked.
#[derive(Debug, Clone)]
pub(crate) struct EncodedFrame {
    /// Where it is in the chunk's bytes, its length, and how to link it.
    pub unlinked: UnlinkedFrame,
    /// A data record's chain hash but its link, until [`EncodedChunk::link`] uses it;
    /// `None` for a restart record (not a link of the chain).
    pub hash: Option<UnlinkedHash>,
    /// True for a restart record.
    pub is_restart: bool,
    /// The record's offset (a restart record's: the next data record's).
    pub offset: u64,
    /// Uncompressed payload length.
    pub payload_len: usize,
}

/// The frames of one chunk, back to back, and what each one is.
#[derive(Debug, Clone, Default)]
pub(crate) struct EncodedChunk {
    /// The frames' bytes; each frame's link and CRC are zeros until [`Self::link`].
    pub bytes: Vec<u8>,
    /// The frames, in order.
    pub frames: Vec<EncodedFrame>,
    /// Under a [`crate::PayloadTransform`]: the chunk's events as stored (transformed);
    /// empty otherwise.
    pub stored: Vec<Bytes>,
    /// Under a [`crate::PayloadTransform`]: why the chunk's events could not be transformed
    /// (the chunk has no frames then).
    pub failed: Option<crate::TransformError>,
}

impl EncodedChunk {
    /// Links the frames in order after `head` (the chain hash of the data record before the
    /// chunk) and returns the chain hash of the chunk's last data record (`head` if it has
    /// none).
    ///
    /// # Panics
    ///
    /// Panics if `head`'s presence differs from what the chunk was encoded for (a bug: see
    /// [`UnlinkedFrame::link`]).
    pub fn link(&mut self, head: Option<ChainHash>) -> Option<ChainHash> {
        let mut prev = head;
        for frame in &mut self.frames {
            frame.unlinked.link(&mut self.bytes, prev.as_ref());
            if let Some(hash) = frame.hash.take() {
                prev = Some(hash.link(prev.as_ref()));
            }
        }
        prev
    }
}

#[cfg(test)]
/// Encodes chunk `index` of `events` (all of a batch's events) under `plan`: pure, and the
/// same bytes whoever calls it.
#[must_use]
pub(crate) fn encode_chunk(events: &[Bytes], plan: &BatchPlan, index: usize) -> EncodedChunk {
    let mut out = EncodedChunk::default();
    encode_chunk_into(&mut out, events, plan, index);
    out
}

/// The indexes of chunk `index`'s events in a batch of `len` events.
#[must_use]
pub(crate) fn chunk_range(index: usize, len: usize) -> std::ops::Range<usize> {
    let start = (index * CHUNK_EVENTS).min(len);
    start..(start + CHUNK_EVENTS).min(len)
}

/// [`encode_chunk`] into `out`, whose contents are replaced and whose memory is reused.
pub(crate) fn encode_chunk_into(
    out: &mut EncodedChunk,
    events: &[Bytes],
    plan: &BatchPlan,
    index: usize,
) {
    let range = chunk_range(index, events.len());
    let chunk = events.get(range.clone()).unwrap_or_default();
    encode_events_into(out, chunk, range.start, events.len(), plan);
}

/// [`encode_chunk_into`] given the chunk's events alone: `chunk` holds the events from index
/// `start` of a batch of `batch_len` events.
pub(crate) fn encode_events_into(
    out: &mut EncodedChunk,
    chunk: &[Bytes],
    start: usize,
    batch_len: usize,
    plan: &BatchPlan,
) {
    let payload_bytes: usize = chunk.iter().map(Bytes::len).sum();
    out.bytes.clear();
    out.frames.clear();
    out.bytes
        .reserve(payload_bytes + (chunk.len() + 1) * RECORD_OVERHEAD);
    out.frames.reserve(chunk.len() + 1);
    let first = plan.first_offset + start as u64;
    let mut restart_records = plan
        .restart_records
        .iter()
        .skip_while(|(offset, _)| *offset < first)
        .peekable();
    let mut codec = CodecChoice::new(plan.compression);
    let last = plan.first_offset + (batch_len as u64).saturating_sub(1);
    for (position, (offset, event)) in (start..).zip((first..).zip(chunk)) {
        let has_prev = position > 0 || plan.head_present;
        if let Some((_, payload)) = restart_records.next_if(|(at, _)| *at == offset) {
            // A restart record always precedes a data record of its batch.
            let flags = FrameFlags {
                has_prev,
                continues_batch: true,
            };
            out.push(
                offset,
                RecordKind::Restart,
                CompressionKind::None,
                flags,
                payload,
            );
        }
        let flags = FrameFlags {
            has_prev,
            continues_batch: plan.continues_batch(offset, last),
        };
        let compressed = out.push(offset, RecordKind::Data, codec.next(), flags, event);
        codec.record(compressed);
    }
}

/// Data records of a chunk in a row that LZ4 did not shrink after which the chunk's next
/// records are stored as they are without trying, but for one in [`LZ4_PROBE_EVERY`].
pub(crate) const LZ4_GIVE_UP_AFTER: u32 = 8;

/// While LZ4 is given up in a chunk, every this many records are still tried; one that
/// shrinks starts trying every record again.
pub(crate) const LZ4_PROBE_EVERY: u32 = 16;

/// Which codec each data record of a chunk is tried with: the plan's, except that LZ4 is
/// tried only on a probe once [`LZ4_GIVE_UP_AFTER`] records in a row did not shrink.
///
/// Why: trying LZ4 on a record has a fixed cost whatever the record (`lz4_flex` zeroes an 8
/// KiB table per call), a large part of appending incompressible payloads (encrypted or
/// random data) when tried on each (docs/PERFORMANCE.md, section "Design decisions"). The
/// choice depends only on the chunk's own records, so the frames are the same bytes whichever
/// thread encodes the chunk; a reader sees each record's codec in its frame. The price: a
/// compressible record among incompressible ones may be stored uncompressed (at most
/// [`LZ4_PROBE_EVERY`] - 1 in a row).
struct CodecChoice {
    asked: CompressionKind,
    misses: u32,
    since_probe: u32,
}

impl CodecChoice {
    fn new(asked: CompressionKind) -> Self {
        Self {
            asked,
            misses: 0,
            since_probe: 0,
        }
    }

    /// The codec to try on the next data record.
    fn next(&mut self) -> CompressionKind {
        if self.asked != CompressionKind::Lz4 || self.misses < LZ4_GIVE_UP_AFTER {
            return self.asked;
        }
        self.since_probe += 1;
        if self.since_probe >= LZ4_PROBE_EVERY {
            self.since_probe = 0;
            CompressionKind::Lz4
        } else {
            CompressionKind::None
        }
    }

    /// What the record just encoded turned out: stored compressed or not.
    fn record(&mut self, compressed: bool) {
        if compressed {
            self.misses = 0;
            self.since_probe = 0;
        } else {
            self.misses = self.misses.saturating_add(1);
        }
    }
}

/// A frame's flag bits, as `crate::record` writes them.
#[derive(Debug, Clone, Copy)]
struct FrameFlags {
    has_prev: bool,
    continues_batch: bool,
}

impl EncodedChunk {
    fn push(
        &mut self,
        offset: u64,
        kind: RecordKind,
        compression: CompressionKind,
        flags: FrameFlags,
        payload: &[u8],
    ) -> bool {
        let offset_typed = Offset::new(offset);
        let unlinked = encode_unlinked(
            &mut self.bytes,
            offset_typed,
            kind,
            compression,
            flags.has_prev,
            flags.continues_batch,
            payload,
        );
        let hash =
            (kind == RecordKind::Data).then(|| UnlinkedHash::new(offset_typed, kind, payload));
        let compressed = unlinked.compressed;
        self.frames.push(EncodedFrame {
            unlinked,
            hash,
            is_restart: kind == RecordKind::Restart,
            offset,
            payload_len: payload.len(),
        });
        compressed
    }
}
