//! [`BatchJob`]: a batch's frames encoded in chunks, on whichever threads are free, and
//! linked into a chain in order by the appending thread.
//!
//! Appending a batch is mostly work that does not depend on the chain: hashing each payload
//! (all of a record's chain hash but its last block or two), compressing it, copying it into a
//! frame, and the CRC of that frame. Format 3 puts the link to the previous record *last* in
//! both the chain hash and the frame (`docs/FORMAT.md`), so all of that is done here per
//! chunk of [`CHUNK_EVENTS`] events, independently of every other chunk
//! ([`encode_chunk`]): an [`EncodedChunk`] of unlinked frames and [`UnlinkedHash`]es. What
//! must follow the chain, one record after another, is small: finish each hash with its
//! predecessor's and write that predecessor into the frame with the end of the CRC
//! ([`EncodedChunk::link`]), about one SHA-256 block and 36 bytes per record.
//!
//! The appending thread takes the chunks in order ([`BatchJob::take`]), links them and writes
//! them out. Chunks are *claimed* (an atomic counter) by whichever thread gets to them first:
//! the store's helper thread ([`BatchWorker`], for batches of [`MIN_EVENTS`] or more) or the
//! appender itself, which encodes the next unclaimed chunk whenever the one it needs is still
//! being encoded elsewhere, and every chunk when no helper runs. So the two threads share the
//! encoding whatever their speeds, the appender never waits for a thread that has not started,
//! and the frames are the same bytes whoever encoded which chunk (`batch_job_tests.rs`).
//!
//! Why a long-lived thread and not `std::thread::scope` per batch: measured here (2 cores),
//! starting and joining a thread per batch cost more than the overlap gained.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use kimberlite_crypto::{ChainHash, UnlinkedHash};
use kimberlite_types::{CompressionKind, Offset, RecordKind};

use crate::job_board::{lock, BoardJob, JobBoard, Wakeup, Watch};
use crate::record::{encode_unlinked, UnlinkedFrame, RECORD_OVERHEAD};

/// Events per chunk: small enough that the appender starts linking and writing early, large
/// enough that claiming and signalling (a few atomics and one lock) are noise.
pub const CHUNK_EVENTS: usize = 64;

/// Batches with fewer events are encoded on the appending thread alone: handing over costs a
/// wake-up.
pub const MIN_EVENTS: usize = 2 * CHUNK_EVENTS;

/// The longest the helper watches for the next batch before it sleeps, when batches have
/// lately come within this of each other ([`Watch::UpTo`]): a writer appending large batches
/// with some work between them (an import that parses its input, a replay) hands over the
/// next one within that, and a sleeping helper takes tens of microseconds to wake, a tenth of
/// a 1,000-event batch. Measured with `append_nosync`, whose batches come ~170 µs apart (the
/// baseline runs between them): a fixed 100 µs watch 229-243 µs per batch, this one 204-221.
const WATCH_LIMIT: std::time::Duration = std::time::Duration::from_micros(500);

/// Everything about a batch's frames that is known before its first hash: where it starts,
/// whether its first record has a predecessor, the codec, and the restart records to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// Offset of the batch's first event.
    pub first_offset: u64,
    /// Whether the stream has a record before the batch (its head hash is `Some`).
    pub head_present: bool,
    /// Codec asked for the data records (each is stored compressed only if that is smaller).
    pub compression: CompressionKind,
    /// Restart records, by increasing offset: `(offset, payload)` is a restart record written
    /// just before the data record at `offset`, which must be one of the batch's offsets.
    pub restart_records: Vec<(u64, Bytes)>,
}

/// One frame of an [`EncodedChunk`]: encoded, not yet linked.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
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
pub struct EncodedChunk {
    /// The frames' bytes; each frame's link and CRC are zeros until [`Self::link`].
    pub bytes: Vec<u8>,
    /// The frames, in order.
    pub frames: Vec<EncodedFrame>,
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

/// Encodes chunk `index` of `events` (all of a batch's events) under `plan`: pure, and the
/// same bytes whoever calls it.
#[must_use]
pub fn encode_chunk(events: &[Bytes], plan: &BatchPlan, index: usize) -> EncodedChunk {
    let mut out = EncodedChunk::default();
    encode_chunk_into(&mut out, events, plan, index);
    out
}

/// [`encode_chunk`] into `out`, whose contents are replaced and whose memory is reused.
pub fn encode_chunk_into(out: &mut EncodedChunk, events: &[Bytes], plan: &BatchPlan, index: usize) {
    let start = (index * CHUNK_EVENTS).min(events.len());
    let end = (start + CHUNK_EVENTS).min(events.len());
    let chunk = events.get(start..end).unwrap_or_default();
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
    for (position, (offset, event)) in (start..).zip((first..).zip(chunk)) {
        let has_prev = position > 0 || plan.head_present;
        if let Some((_, payload)) = restart_records.next_if(|(at, _)| *at == offset) {
            out.push(
                offset,
                RecordKind::Restart,
                CompressionKind::None,
                has_prev,
                payload,
            );
        }
        let compressed = out.push(offset, RecordKind::Data, codec.next(), has_prev, event);
        codec.record(compressed);
    }
}

/// Data records of a chunk in a row that LZ4 did not shrink after which the chunk's next
/// records are stored as they are without trying, but for one in [`LZ4_PROBE_EVERY`].
pub const LZ4_GIVE_UP_AFTER: u32 = 8;

/// While LZ4 is given up in a chunk, every this many records are still tried; one that
/// shrinks starts trying every record again.
pub const LZ4_PROBE_EVERY: u32 = 16;

/// Which codec each data record of a chunk is tried with: the plan's, except that LZ4 is
/// tried only on a probe once [`LZ4_GIVE_UP_AFTER`] records in a row did not shrink.
///
/// Why: trying LZ4 on a record costs ~0.15 µs whatever the record (`lz4_flex` zeroes an 8
/// KiB table per call), the whole cost of appending incompressible payloads (encrypted or
/// random data, the `kimberlite` store's default codec) was ~60% more than storing them
/// as they are. The choice depends only on the chunk's own records, so the frames are the
/// same bytes whichever thread encodes the chunk; a reader sees each record's codec in its
/// frame, as before. Dropped: a compressible record among incompressible ones may be
/// stored uncompressed (at most [`LZ4_PROBE_EVERY`] - 1 in a row).
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

impl EncodedChunk {
    fn push(
        &mut self,
        offset: u64,
        kind: RecordKind,
        compression: CompressionKind,
        has_prev: bool,
        payload: &[u8],
    ) -> bool {
        let offset_typed = Offset::new(offset);
        let unlinked = encode_unlinked(
            &mut self.bytes,
            offset_typed,
            kind,
            compression,
            has_prev,
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

/// A chunk's place in the job: encoded by its claimer, taken once by the appender. Before it
/// is encoded it holds the (empty) memory the chunk is to be encoded into.
#[derive(Debug, Default)]
struct Slot {
    done: AtomicBool,
    chunk: Mutex<Option<EncodedChunk>>,
}

/// Most memory, in bytes of frames, that [`SpareChunks`] keeps: the chunks of a batch of
/// about 6,000 events of 256 bytes. Batches of larger events allocate part of their chunks
/// afresh, which costs little beside their size.
pub const MAX_SPARE_BYTES: usize = 2 * 1024 * 1024;

/// The memory of chunks already written, for the next batch's chunks to be encoded into.
///
/// Why: allocating each chunk afresh had the encoding thread allocate and the appending
/// thread free ~20 KiB per 64 events; the allocator then gave the helper thread's heap back
/// to the kernel after each batch (`madvise`, which interrupts the other core to flush its
/// TLB) and the next batch faulted the same pages in again. Reusing them: 1,000 x 256 B
/// batches 304-312 -> 260-265 µs unsynced, 626-660 -> 561-590 µs synced (binaries
/// alternated, `examples/append_loop.rs`).
#[derive(Debug, Default)]
pub struct SpareChunks {
    chunks: Vec<EncodedChunk>,
    /// Capacity of the kept chunks' frame bytes.
    bytes: usize,
}

impl SpareChunks {
    /// Keeps `chunk`'s memory for a later batch, unless that would keep more than
    /// [`MAX_SPARE_BYTES`].
    pub fn put(&mut self, chunk: EncodedChunk) {
        let bytes = chunk.bytes.capacity();
        if self.bytes + bytes <= MAX_SPARE_BYTES {
            self.bytes += bytes;
            self.chunks.push(chunk);
        }
    }

    /// Bytes of frame memory kept.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Chunks kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// True when no chunk is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    fn take(&mut self) -> EncodedChunk {
        let chunk = self.chunks.pop().unwrap_or_default();
        self.bytes -= chunk.bytes.capacity();
        chunk
    }
}

/// One batch being encoded.
#[derive(Debug)]
pub struct BatchJob {
    events: Vec<Bytes>,
    plan: BatchPlan,
    next_claim: AtomicUsize,
    slots: Vec<Slot>,
    /// Where the appender waits for a chunk another thread is encoding.
    encoded: Wakeup,
}

impl BatchJob {
    /// A job encoding `events` under `plan`.
    #[must_use]
    pub fn new(events: Vec<Bytes>, plan: BatchPlan) -> Self {
        Self::reusing(events, plan, &mut SpareChunks::default())
    }

    /// A job encoding `events` under `plan` into memory taken from `spares`.
    #[must_use]
    pub fn reusing(events: Vec<Bytes>, plan: BatchPlan, spares: &mut SpareChunks) -> Self {
        let chunks = events.len().div_ceil(CHUNK_EVENTS);
        Self {
            events,
            plan,
            next_claim: AtomicUsize::new(0),
            slots: (0..chunks)
                .map(|_| Slot {
                    done: AtomicBool::new(false),
                    chunk: Mutex::new(Some(spares.take())),
                })
                .collect(),
            encoded: Wakeup::default(),
        }
    }

    /// The batch's events.
    #[must_use]
    pub fn events(&self) -> &[Bytes] {
        &self.events
    }

    /// Number of chunks.
    #[must_use]
    pub fn chunk_count(&self) -> usize {
        self.slots.len()
    }

    /// Claims the next unclaimed chunk and encodes it; false when none was left.
    fn claim_one(&self) -> bool {
        let index = self.next_claim.fetch_add(1, Ordering::AcqRel);
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let mut chunk = lock(&slot.chunk).take().unwrap_or_default();
        encode_chunk_into(&mut chunk, &self.events, &self.plan, index);
        *lock(&slot.chunk) = Some(chunk);
        slot.done.store(true, Ordering::SeqCst);
        self.encoded.notify();
        true
    }

    /// Chunk `index`, encoded but not linked: encoded here if no thread has claimed it; if
    /// another thread is encoding it, this thread encodes later chunks meanwhile, and waits
    /// only when none is left. Each chunk is handed out once; an empty chunk past the end or
    /// on a second call.
    pub fn take(&self, index: usize) -> EncodedChunk {
        let Some(slot) = self.slots.get(index) else {
            return EncodedChunk::default();
        };
        // Not a busy wait: each round encodes a whole chunk.
        while !slot.done.load(Ordering::Acquire) {
            if !self.claim_one() {
                break;
            }
        }
        // Usually being encoded on another core right now.
        self.encoded.wait_until(|| slot.done.load(Ordering::SeqCst));
        lock(&slot.chunk).take().unwrap_or_default()
    }
}

impl BoardJob for BatchJob {
    /// Encodes chunks until none is left unclaimed.
    fn run(&self) {
        while self.claim_one() {}
    }
}

/// The encoding helper: one thread for the whole process, shared by every store, started at
/// the first batch that uses it.
///
/// Why one and not one per store: on the 2-core machine of `docs/PERFORMANCE.md` a second
/// helper has no core of its own, and two stores appended to in turn had both helpers
/// watching for their next batch, each taking the core the other store's encoding needed
/// (1,000-event batches 222-229 µs -> 330 µs with a 300 µs watch). One helper sees whichever
/// store's batch comes next. Dropped: stores appended to at the same time on a larger machine
/// share it (each appender still encodes whatever the helper has not claimed, so none waits
/// for it).
fn encode_board() -> &'static JobBoard<BatchJob> {
    static BOARD: OnceLock<JobBoard<BatchJob>> = OnceLock::new();
    BOARD.get_or_init(|| {
        let mut board = JobBoard::new("kimberlite-encode", Watch::UpTo(WATCH_LIMIT));
        board.start_helpers(1);
        board
    })
}

/// A store's way to the encoding helper (one thread for the process, see `encode_board`):
/// posts its batches there and takes them down when written.
#[derive(Debug, Default)]
pub struct BatchWorker {
    /// The job posted last, until [`Self::finish`].
    posted: Option<Arc<BatchJob>>,
}

impl BatchWorker {
    /// Hands `job` to the helper thread (starting it the first time) and returns; the caller
    /// then takes each chunk with [`BatchJob::take`] and calls [`Self::finish`]. If the thread
    /// cannot be started, the caller simply encodes every chunk itself.
    pub fn submit(&mut self, job: &Arc<BatchJob>) {
        encode_board().post(job);
        self.posted = Some(Arc::clone(job));
    }

    /// Takes the job down (its chunks are all encoded once the caller has taken them), unless
    /// another store's job has replaced it.
    pub fn finish(&mut self) {
        if let Some(job) = self.posted.take() {
            encode_board().clear(&job);
        }
    }
}

#[cfg(test)]
#[path = "batch_job_tests.rs"]
mod tests;
