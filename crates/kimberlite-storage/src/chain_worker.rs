//! [`ChainWorker`]: a helper thread that computes a batch's chain hashes ahead of the thread
//! that encodes and writes it.
//!
//! An append's critical path is the chain: each record's hash needs the one before, so the
//! hashes of one batch are computed one after another, on one core. Everything else an append
//! does (LZ4, frame headers, CRC32C, copying payloads, the `write` into the page cache) needs
//! only hashes already computed. So for a large batch the caller hands the events to this
//! worker, which hashes them in chunks of [`CHUNK_EVENTS`], while the caller encodes each
//! chunk as soon as its hashes are there.
//!
//! The chunks are *claimed* in order (an atomic counter) by whichever thread gets to them: the
//! worker, or the caller when it finds the next chunk it needs unclaimed (the worker has not
//! been scheduled yet, on a busy machine). A claimer of chunk `k` waits until chunk `k - 1` is
//! complete, whose last hash it continues from, so chunks complete in order and the result is
//! the same chain as [`chain_hashes`] over the whole batch, whoever computed which chunk
//! (tested below). The caller never waits for a thread that has not started: at worst it
//! hashes every chunk itself, as without the worker.
//!
//! Why a long-lived thread and not `std::thread::scope` per batch: measured here (2 cores),
//! starting and joining a thread per batch cost more than the overlap gained.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, RecordKind};

use crate::job_board::{lock, BoardJob, JobBoard};

/// Events per chunk of hashes: small enough that the caller starts encoding early, large
/// enough that claiming and signalling (a few atomics and one lock) are noise.
pub const CHUNK_EVENTS: usize = 64;

/// Batches with fewer events are hashed on the calling thread: handing over costs a wake-up.
pub const MIN_EVENTS: usize = 2 * CHUNK_EVENTS;

/// The chain hashes of `events` appended after `prev` from offset `first_offset` on.
#[must_use]
pub fn chain_hashes(
    mut prev: Option<ChainHash>,
    first_offset: u64,
    events: &[Bytes],
) -> Vec<ChainHash> {
    let mut hashes = Vec::with_capacity(events.len());
    for (offset, event) in (first_offset..).zip(events) {
        let hash = ChainHash::compute(prev.as_ref(), Offset::new(offset), RecordKind::Data, event);
        hashes.push(hash);
        prev = Some(hash);
    }
    hashes
}

/// Spins (each a CPU pause) a waiter makes before it sleeps: a chunk that another thread is
/// hashing is due within ~15 µs (64 events of 256 bytes), sooner than a sleep and a wake-up
/// take on the machine of `docs/PERFORMANCE.md`.
const SPINS_BEFORE_SLEEP: usize = 4_096;

/// One batch being hashed.
#[derive(Debug)]
pub struct ChainJob {
    events: Vec<Bytes>,
    first_offset: u64,
    /// The hash before the batch's first event.
    head: Option<ChainHash>,
    next_claim: AtomicUsize,
    chunks: Vec<OnceLock<Vec<ChainHash>>>,
    /// Chunks complete: always a prefix, since chunk `k` completes after chunk `k - 1`.
    completed: AtomicUsize,
    /// Threads asleep waiting for `completed` to grow (a completer wakes them only if any).
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    advanced: Condvar,
}

impl ChainJob {
    /// A job hashing `events` after `prev`, the first at offset `first_offset`.
    #[must_use]
    pub fn new(events: Vec<Bytes>, first_offset: u64, prev: Option<ChainHash>) -> Self {
        let chunks = events.len().div_ceil(CHUNK_EVENTS);
        Self {
            events,
            first_offset,
            head: prev,
            next_claim: AtomicUsize::new(0),
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
            completed: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            advanced: Condvar::new(),
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
        self.chunks.len()
    }

    /// The events of chunk `index` (empty past the end).
    #[must_use]
    pub fn chunk_events(&self, index: usize) -> &[Bytes] {
        let start = (index * CHUNK_EVENTS).min(self.events.len());
        let end = (start + CHUNK_EVENTS).min(self.events.len());
        self.events.get(start..end).unwrap_or_default()
    }

    /// Waits until `count` chunks are complete: spins a little (the chunk is usually being
    /// hashed on another core right now), then sleeps. Returns the last hash of chunk
    /// `count - 1` (the batch's `prev` for `count == 0`).
    fn wait_completed(&self, count: usize) -> Option<ChainHash> {
        let mut spins = 0;
        while self.completed.load(Ordering::Acquire) < count {
            if spins < SPINS_BEFORE_SLEEP {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let mut guard = lock(&self.sleep);
            // SeqCst pairs with `complete`: either this thread sees the new count, or the
            // completer sees this sleeper and notifies under the lock, after the wait began.
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            while self.completed.load(Ordering::SeqCst) < count {
                guard = self
                    .advanced
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        match count.checked_sub(1) {
            None => self.head,
            Some(last) => self
                .chunks
                .get(last)
                .and_then(OnceLock::get)
                .and_then(|hashes| hashes.last().copied()),
        }
    }

    /// Marks chunk `index` complete (its slot is set) and wakes sleepers, if any.
    fn complete(&self, index: usize) {
        self.completed.store(index + 1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&self.sleep);
            self.advanced.notify_all();
        }
    }

    /// Claims the next unclaimed chunk and hashes it; false when none was left.
    fn claim_one(&self) -> bool {
        let index = self.next_claim.fetch_add(1, Ordering::AcqRel);
        let Some(slot) = self.chunks.get(index) else {
            return false;
        };
        let prev = self.wait_completed(index);
        let first = self.first_offset + (index * CHUNK_EVENTS) as u64;
        // Only the claimer of `index` sets its slot, so this cannot fail.
        let _ = slot.set(chain_hashes(prev, first, self.chunk_events(index)));
        self.complete(index);
        true
    }

    /// The hashes of chunk `index`, computing them on this thread when they are not claimed
    /// yet, else waiting for the thread that claimed them.
    pub fn hashes(&self, index: usize) -> &[ChainHash] {
        while self
            .chunks
            .get(index)
            .is_some_and(|slot| slot.get().is_none())
            && self.next_claim.load(Ordering::Acquire) <= index
        {
            self.claim_one();
        }
        if index < self.chunks.len() {
            self.wait_completed(index + 1);
        }
        self.chunks
            .get(index)
            .and_then(OnceLock::get)
            .map_or(&[], Vec::as_slice)
    }
}

impl BoardJob for ChainJob {
    /// Hashes chunks until none is left unclaimed.
    fn run(&self) {
        while self.claim_one() {}
    }
}

/// The helper thread of one store; started at the first batch that uses it, told to exit when
/// the worker is dropped.
#[derive(Debug)]
pub struct ChainWorker {
    board: JobBoard<ChainJob>,
}

impl Default for ChainWorker {
    fn default() -> Self {
        Self {
            board: JobBoard::new("kimberlite-chain"),
        }
    }
}

impl ChainWorker {
    /// Hands `job` to the worker thread (starting it the first time) and returns; the caller
    /// then takes each chunk's hashes with [`ChainJob::hashes`] and calls [`Self::finish`].
    /// If the thread cannot be started, the caller simply hashes every chunk itself.
    pub fn submit(&mut self, job: &Arc<ChainJob>) {
        self.board.start_helpers(1);
        self.board.post(job);
    }

    /// Forgets the current job (its chunks are all complete once the caller has read them).
    pub fn finish(&mut self) {
        self.board.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(count: usize) -> Vec<Bytes> {
        (0..count)
            .map(|i| Bytes::from(format!("event {i} {}", "x".repeat(i % 50))))
            .collect()
    }

    #[test]
    fn chain_hashes_link_each_event_to_the_one_before() {
        let events = events(5);
        let head = ChainHash::compute(None, Offset::ZERO, RecordKind::Data, b"head");
        let hashes = chain_hashes(Some(head), 1, &events);
        let mut prev = Some(head);
        for (i, (event, hash)) in events.iter().zip(&hashes).enumerate() {
            let offset = Offset::new(1 + i as u64);
            let expected = ChainHash::compute(prev.as_ref(), offset, RecordKind::Data, event);
            assert_eq!(*hash, expected);
            prev = Some(expected);
        }
    }

    fn all_hashes(job: &ChainJob) -> Vec<ChainHash> {
        (0..job.chunk_count())
            .flat_map(|index| job.hashes(index).to_vec())
            .collect()
    }

    /// Whoever hashes which chunk (the caller alone, the worker, both racing), the result is
    /// the chain over the whole batch.
    #[test]
    fn a_job_gives_the_whole_batch_chain_whoever_hashes() {
        let head = Some(ChainHash::compute(
            None,
            Offset::ZERO,
            RecordKind::Data,
            b"h",
        ));
        let mut worker = ChainWorker::default();
        for count in [1, 63, 64, 65, 128, 129, 1_000, 3_001] {
            let expected = chain_hashes(head, 7, &events(count));

            let alone = ChainJob::new(events(count), 7, head);
            assert_eq!(all_hashes(&alone), expected, "caller alone, {count}");

            let job = Arc::new(ChainJob::new(events(count), 7, head));
            worker.submit(&job);
            assert_eq!(all_hashes(&job), expected, "with the worker, {count}");
            worker.finish();

            let job = Arc::new(ChainJob::new(events(count), 7, head));
            let racer = {
                let job = Arc::clone(&job);
                std::thread::spawn(move || BoardJob::run(&*job))
            };
            assert_eq!(all_hashes(&job), expected, "racing a thread, {count}");
            racer.join().unwrap();
        }
    }

    #[test]
    fn chunks_split_the_events_in_order() {
        let job = ChainJob::new(events(130), 0, None);
        assert_eq!(job.chunk_count(), 3);
        assert_eq!(job.chunk_events(0).len(), 64);
        assert_eq!(job.chunk_events(2).len(), 2);
        assert!(job.chunk_events(3).is_empty());
        assert!(job.hashes(3).is_empty());
        assert_eq!(job.events(), events(130).as_slice());
    }
}
