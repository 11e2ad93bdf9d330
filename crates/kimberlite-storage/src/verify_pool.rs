//! [`VerifyPool`]: the helper threads a store keeps to run [`verify_frame`] over a run of
//! frames on several cores (see [`crate::frames`] for why that is sound).
//!
//! Why a pool and not `std::thread::scope` per read: measured on the 2-core machine of
//! `docs/PERFORMANCE.md`, a scoped thread costs its start-up on every read (10–30 µs of a
//! ~400 µs read), and, worse, joining it waits until the scheduler has run it: with both
//! cores busy (a compiler, a simulator) a 1,000-event read went from 387 µs on one thread
//! to 2.57 ms with a scoped helper. Here the helpers are started once, and the work is split
//! into small blocks that whoever is running claims next (an atomic counter): the calling
//! thread never waits for a helper that has not started, only for a block a helper is in the
//! middle of (at most [`BLOCK_FRAMES`] frames, ~10 µs). On a busy machine a read degrades to
//! the one-thread speed instead of to the scheduler's latency.
//!
//! Results are the same vector [`decode_frames`](crate::frames::decode_frames) returns on
//! one thread, whatever the helpers did (tested below).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use crate::error::RecordError;
use crate::frames::{verify_frame, VerifiedFrame, MAX_VERIFY_THREADS, MIN_FRAMES_PER_THREAD};

/// Frames per block claimed at once: small enough that a helper preempted in the middle of
/// one delays the caller little, large enough that claiming (one atomic add) is noise.
pub const BLOCK_FRAMES: usize = 32;

type Verified = Result<VerifiedFrame, RecordError>;

/// Helper threads that verify frames for a store; see the module docs. Dropping the pool
/// tells its helpers to exit (they are not joined: an idle helper holds nothing).
#[derive(Debug)]
pub struct VerifyPool {
    threads: usize,
    shared: Arc<Shared>,
    /// Helpers started so far (they start at the first run long enough to use them).
    started: usize,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<PoolState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct PoolState {
    job: Option<Arc<Job>>,
    /// Bumped for each job, so a helper runs each job at most once.
    generation: u64,
    shutdown: bool,
}

#[derive(Debug)]
struct Job {
    frames: Vec<Bytes>,
    next_block: AtomicUsize,
    results: Vec<Mutex<Option<Vec<Verified>>>>,
    /// Blocks not yet finished, under a lock so that the caller can wait for the last one.
    unfinished: Mutex<usize>,
    finished: Condvar,
}

/// Locks, ignoring poison: the data behind each lock stays consistent at every point
/// (a value is replaced whole), so a panic elsewhere cannot leave it half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Job {
    fn new(frames: Vec<Bytes>) -> Self {
        let blocks = frames.len().div_ceil(BLOCK_FRAMES);
        Self {
            frames,
            next_block: AtomicUsize::new(0),
            results: (0..blocks).map(|_| Mutex::new(None)).collect(),
            unfinished: Mutex::new(blocks),
            finished: Condvar::new(),
        }
    }

    /// Claims and verifies blocks until none is left unclaimed.
    fn run(&self) {
        loop {
            let block = self.next_block.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = self.results.get(block) else {
                return;
            };
            let start = block * BLOCK_FRAMES;
            let end = (start + BLOCK_FRAMES).min(self.frames.len());
            let verified = self
                .frames
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .map(verify_frame)
                .collect();
            *lock(slot) = Some(verified);
            let mut unfinished = lock(&self.unfinished);
            *unfinished = unfinished.saturating_sub(1);
            if *unfinished == 0 {
                self.finished.notify_all();
            }
        }
    }

    /// Waits until every block is finished, then returns the results in order.
    fn collect(&self) -> Vec<Verified> {
        let mut unfinished = lock(&self.unfinished);
        while *unfinished > 0 {
            unfinished = self
                .finished
                .wait(unfinished)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(unfinished);
        let mut out = Vec::with_capacity(self.frames.len());
        for slot in &self.results {
            out.extend(lock(slot).take().unwrap_or_default());
        }
        out
    }
}

impl VerifyPool {
    /// A pool verifying on up to `threads` threads, the caller's included (so `threads - 1`
    /// helpers, capped at [`MAX_VERIFY_THREADS`]). `0` and `1` mean the caller only.
    #[must_use]
    pub fn new(threads: usize) -> Self {
        Self {
            threads: threads.clamp(1, MAX_VERIFY_THREADS),
            shared: Arc::new(Shared::default()),
            started: 0,
        }
    }

    /// The threads a verification may use, the caller's included.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// [`verify_frame`] of every frame, in order: the same vector as
    /// `decode_frames(&frames)`. Runs shorter than `2 * MIN_FRAMES_PER_THREAD` stay on
    /// the calling thread.
    pub fn decode(&mut self, frames: Vec<Bytes>) -> Vec<Verified> {
        let helpers = (self.threads - 1).min(frames.len() / MIN_FRAMES_PER_THREAD);
        if helpers == 0 || frames.len() < 2 * MIN_FRAMES_PER_THREAD {
            return frames.iter().map(verify_frame).collect();
        }
        self.start_helpers(helpers);
        let job = Arc::new(Job::new(frames));
        {
            let mut state = lock(&self.shared.state);
            state.job = Some(Arc::clone(&job));
            state.generation += 1;
        }
        self.shared.wake.notify_all();
        job.run();
        let results = job.collect();
        lock(&self.shared.state).job = None;
        results
    }

    /// Starts helpers up to `wanted`; one that fails to start is not retried now (its
    /// share is then done by whoever runs: the caller at worst).
    fn start_helpers(&mut self, wanted: usize) {
        while self.started < wanted {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("kimberlite-verify".into())
                .spawn(move || helper(&shared));
            self.started += 1;
            if spawned.is_err() {
                return;
            }
        }
    }
}

impl Drop for VerifyPool {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.wake.notify_all();
    }
}

/// A helper: runs each new job's unclaimed blocks, until the pool is dropped.
fn helper(shared: &Shared) {
    let mut seen = 0;
    loop {
        let job = {
            let mut state = lock(&shared.state);
            loop {
                if state.shutdown {
                    return;
                }
                if state.generation != seen {
                    seen = state.generation;
                    if let Some(job) = &state.job {
                        break Arc::clone(job);
                    }
                }
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        job.run();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::decode_frames;
    use crate::record::Record;
    use kimberlite_types::Offset;

    fn frames(count: usize) -> Vec<Bytes> {
        let mut prev = None;
        (0..count)
            .map(|i| {
                let record =
                    Record::new(Offset::new(i as u64), prev, Bytes::from(vec![i as u8; 40]));
                prev = Some(record.compute_hash());
                record.to_bytes()
            })
            .collect()
    }

    #[test]
    fn pool_equals_one_thread_for_every_size_and_thread_count() {
        for threads in [0, 1, 2, 4, 9] {
            let mut pool = VerifyPool::new(threads);
            assert!((1..=MAX_VERIFY_THREADS).contains(&pool.threads()));
            // The same pool serves many jobs, of sizes around the thresholds and blocks.
            for count in [0, 1, 127, 128, 129, 1_000, 4_096, 33] {
                let mut frames = frames(count);
                if count > 100 {
                    frames[count / 2] = Bytes::from_static(b"\x01\x02\x03");
                    frames[BLOCK_FRAMES] = Bytes::from_static(b"\xff");
                }
                let expected = decode_frames(&frames);
                assert_eq!(pool.decode(frames), expected, "{threads} x {count}");
            }
        }
    }

    #[test]
    fn a_dropped_pool_stops_its_helpers() {
        let mut pool = VerifyPool::new(2);
        assert_eq!(pool.decode(frames(300)).len(), 300);
        let shared = Arc::clone(&pool.shared);
        drop(pool);
        // The helper exits and releases its reference to the shared state.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&shared) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(Arc::strong_count(&shared), 1);
    }
}
