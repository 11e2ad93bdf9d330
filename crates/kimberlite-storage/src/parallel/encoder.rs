//! Encoding a batch on whichever threads are free: [`Encoder::encode`] hands a batch's chunks
//! ([`crate::encode`]) to the appending thread in order, and for a batch of [`MIN_EVENTS`] or
//! more posts it to the encode helper thread too.
//!
//! Chunks are *claimed* (an atomic counter) by whichever thread gets to them first: the helper
//! or the appender itself, which encodes the next unclaimed chunk whenever the one it needs is
//! still being encoded elsewhere, and every chunk when no helper runs. So the two threads share
//! the encoding whatever their speeds, the appender never waits for a thread that has not
//! started, and the frames are the same bytes whoever encoded which chunk
//! (`encoder_tests.rs`, against [`encode_chunk`](crate::encode::encode_chunk)).
//!
//! Why a long-lived thread and not `std::thread::scope` per batch: starting and joining a
//! thread per batch costs more than the overlap gains (docs/PERFORMANCE.md, section
//! "Design decisions").

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use super::job_board::{lock, BoardJob, JobBoard, Wakeup, Watch};
use crate::encode::{
    chunk_range, encode_chunk_into, encode_events_into, BatchPlan, EncodedChunk, CHUNK_EVENTS,
};
use crate::transform::{transform_events, PayloadTransform};

/// The fewest events of a batch that the encode helper shares with the appending thread
/// ([`StorageConfig::hash_ahead`](crate::StorageConfig::hash_ahead)); smaller batches are
/// encoded on the appending thread alone, since handing over costs a wake-up. Public so that
/// tests and the simulator can make batches on either side of it; results never depend on it.
pub const MIN_EVENTS: usize = 2 * CHUNK_EVENTS;

/// The longest the encode helper watches for the next batch before it sleeps, when batches
/// have lately come within this of each other ([`Watch::UpTo`]); docs/PERFORMANCE.md, section
/// "Spin-waits".
const WATCH_LIMIT: std::time::Duration = std::time::Duration::from_micros(500);

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
pub(crate) const MAX_SPARE_BYTES: usize = 2 * 1024 * 1024;

/// The memory of chunks already written, for the next batch's chunks to be encoded into.
///
/// Why: allocating each chunk afresh has the encoding thread allocate and the appending
/// thread free the chunk's memory; the allocator then gives the helper thread's heap back to
/// the kernel after each batch (`madvise`, which interrupts the other core to flush its TLB)
/// and the next batch faults the same pages in again (docs/PERFORMANCE.md, section "Design
/// decisions").
#[derive(Debug, Default)]
pub(crate) struct SpareChunks {
    chunks: Vec<EncodedChunk>,
    /// Capacity of the kept chunks' frame bytes.
    bytes: usize,
}

impl SpareChunks {
    /// Keeps `chunk`'s memory for a later batch, unless that would keep more than
    /// [`MAX_SPARE_BYTES`].
    pub(crate) fn put(&mut self, mut chunk: EncodedChunk) {
        // Stored events belong to the batch's caller, not to the next batch.
        chunk.stored = Vec::new();
        chunk.failed = None;
        let bytes = chunk.bytes.capacity();
        if self.bytes + bytes <= MAX_SPARE_BYTES {
            self.bytes += bytes;
            self.chunks.push(chunk);
        }
    }

    #[cfg(test)]
    /// Bytes of frame memory kept.
    #[must_use]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    /// Chunks kept.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.chunks.len()
    }

    #[cfg(test)]
    /// True when no chunk is kept.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
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
pub(crate) struct BatchJob {
    events: Vec<Bytes>,
    plan: BatchPlan,
    /// Applied to each chunk's events before they are encoded.
    transform: Option<Arc<dyn PayloadTransform>>,
    next_claim: AtomicUsize,
    slots: Vec<Slot>,
    /// Where the appender waits for a chunk another thread is encoding.
    encoded: Wakeup,
}

impl BatchJob {
    #[cfg(test)]
    /// A job encoding `events` under `plan`.
    #[must_use]
    pub(crate) fn new(events: Vec<Bytes>, plan: BatchPlan) -> Self {
        Self::reusing(events, plan, &mut SpareChunks::default())
    }

    /// A job encoding `events` under `plan` into memory taken from `spares`.
    #[must_use]
    pub(crate) fn reusing(events: Vec<Bytes>, plan: BatchPlan, spares: &mut SpareChunks) -> Self {
        let chunks = events.len().div_ceil(CHUNK_EVENTS);
        Self {
            events,
            plan,
            transform: None,
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

    /// The job with each chunk's events transformed by `transform` before they are encoded;
    /// each chunk then holds its events as stored ([`EncodedChunk::stored`]).
    #[must_use]
    pub(crate) fn transformed(mut self, transform: Option<Arc<dyn PayloadTransform>>) -> Self {
        self.transform = transform;
        self
    }

    /// The batch's events.
    #[must_use]
    pub(crate) fn events(&self) -> &[Bytes] {
        &self.events
    }

    /// Number of chunks.
    #[must_use]
    pub(crate) fn chunk_count(&self) -> usize {
        self.slots.len()
    }

    /// Claims the next unclaimed chunk and encodes it; false when none was left.
    fn claim_one(&self) -> bool {
        let index = self.next_claim.fetch_add(1, Ordering::AcqRel);
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let mut chunk = lock(&slot.chunk).take().unwrap_or_default();
        match &self.transform {
            None => encode_chunk_into(&mut chunk, &self.events, &self.plan, index),
            Some(transform) => {
                let range = chunk_range(index, self.events.len());
                let events = self.events.get(range.clone()).unwrap_or_default();
                match transform_events(&**transform, range.start, events) {
                    Ok(stored) => {
                        let len = self.events.len();
                        encode_events_into(&mut chunk, &stored, range.start, len, &self.plan);
                        chunk.stored = stored;
                    }
                    Err(error) => {
                        chunk.bytes.clear();
                        chunk.frames.clear();
                        chunk.failed = Some(error);
                    }
                }
            }
        }
        *lock(&slot.chunk) = Some(chunk);
        slot.done.store(true, Ordering::SeqCst);
        self.encoded.notify();
        true
    }

    /// Chunk `index`, encoded but not linked: encoded here if no thread has claimed it; if
    /// another thread is encoding it, this thread encodes later chunks meanwhile, and waits
    /// only when none is left. Each chunk is handed out once; an empty chunk past the end or
    /// on a second call.
    pub(crate) fn take(&self, index: usize) -> EncodedChunk {
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

/// The encode helper shared by every store that has one: one thread, started at the first large
/// batch of a store that has none, and joined when the last store holding it is dropped.
///
/// Why shared and not one per store: on a machine with two cores a second helper has no core of
/// its own, and two stores appended to in turn would have both helpers watching for their next
/// batch, each taking the core the other store's encoding needs (docs/PERFORMANCE.md, section
/// "Design decisions"). One helper sees whichever store's batch comes next; on a larger machine
/// stores appending at once share it, and each appender still encodes whatever the helper has
/// not claimed, so none waits for it.
fn shared_helper() -> Arc<JobBoard<BatchJob>> {
    static SHARED: Mutex<Weak<JobBoard<BatchJob>>> = Mutex::new(Weak::new());
    let mut shared = lock(&SHARED);
    if let Some(board) = shared.upgrade() {
        return board;
    }
    let mut board = JobBoard::new("kimberlite-encode", Watch::UpTo(WATCH_LIMIT));
    board.start_helpers(1);
    let board = Arc::new(board);
    *shared = Arc::downgrade(&board);
    board
}

/// A store's encoder: the memory of chunks already written, and its hold on the shared encode
/// helper (taken at its first batch of [`MIN_EVENTS`] or more, released when it is dropped).
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    spares: SpareChunks,
    helper: Option<Arc<JobBoard<BatchJob>>>,
}

impl Encoder {
    /// Encodes `events` under `plan` (each chunk's events first changed by `transform`, if
    /// any) and hands each chunk, in order and not yet linked, to `each`, stopping at the
    /// first error it returns. With `hash_ahead` a batch of [`MIN_EVENTS`] or more is shared
    /// with the encode helper; the chunks are the same bytes either way.
    pub(crate) fn encode<E>(
        &mut self,
        events: Vec<Bytes>,
        plan: BatchPlan,
        hash_ahead: bool,
        transform: Option<Arc<dyn PayloadTransform>>,
        mut each: impl FnMut(&mut EncodedChunk) -> Result<(), E>,
    ) -> Result<(), E> {
        let job =
            Arc::new(BatchJob::reusing(events, plan, &mut self.spares).transformed(transform));
        let helper = (hash_ahead && job.events().len() >= MIN_EVENTS)
            .then(|| self.helper.get_or_insert_with(shared_helper).clone());
        if let Some(helper) = &helper {
            helper.post(&job);
        }
        let mut result = Ok(());
        for index in 0..job.chunk_count() {
            let mut chunk = job.take(index);
            result = each(&mut chunk);
            self.spares.put(chunk);
            if result.is_err() {
                break;
            }
        }
        // Its chunks are all encoded once taken; a job another store posted since stays up.
        if let Some(helper) = &helper {
            helper.clear(&job);
        }
        result
    }

    /// Whether this encoder holds the shared encode helper.
    #[cfg(test)]
    pub(crate) fn holds_helper(&self) -> bool {
        self.helper.is_some()
    }
}

#[cfg(test)]
#[path = "encoder_tests.rs"]
mod tests;
