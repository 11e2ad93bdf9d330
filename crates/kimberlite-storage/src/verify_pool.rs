//! [`VerifyPool`]: the helper threads a store keeps to run
//! [`verify_frame`](crate::verify::verify_frame) over a run of frames on several cores (see
//! [`crate::verify::frames`] for why that is sound).
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
//! Results are the same vector [`FrameRun::decode`] returns on one thread, whatever the
//! helpers did (tested below).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::RecordError;
use crate::job_board::{lock, BoardJob, JobBoard, Wakeup, Watch};
use crate::verify::{FrameRun, VerifiedFrame, MAX_VERIFY_THREADS, MIN_FRAMES_PER_THREAD};

/// Frames per block claimed at once: small enough that a helper preempted in the middle of
/// one delays the caller little, large enough that claiming (one atomic add) is noise.
pub const BLOCK_FRAMES: usize = 32;

/// Reads that may return this many payload bytes or more wake the helpers before they read
/// their frames ([`VerifyPool::wake_ahead`]): enough for `2 * MIN_FRAMES_PER_THREAD` frames of
/// 256-byte events, the size below which a run stays on the calling thread anyway.
pub const WAKE_AHEAD_MIN_BYTES: u64 = 2 * MIN_FRAMES_PER_THREAD as u64 * 256;

type Verified = Result<VerifiedFrame, RecordError>;

/// Helper threads that verify frames for a store; see the module docs. Dropping the pool
/// tells its helpers to exit (they are not joined: an idle helper holds nothing).
#[derive(Debug)]
pub struct VerifyPool {
    threads: usize,
    /// Helpers start at the first run long enough to use them.
    board: JobBoard<Job>,
}

#[derive(Debug)]
struct Job {
    frames: FrameRun,
    next_block: AtomicUsize,
    results: Vec<Mutex<Option<Vec<Verified>>>>,
    /// Blocks not yet finished.
    unfinished: AtomicUsize,
    /// Where the caller waits for the last block.
    finished: Wakeup,
}

impl Job {
    fn new(frames: FrameRun) -> Self {
        let blocks = frames.len().div_ceil(BLOCK_FRAMES);
        Self {
            frames,
            next_block: AtomicUsize::new(0),
            results: (0..blocks).map(|_| Mutex::new(None)).collect(),
            unfinished: AtomicUsize::new(blocks),
            finished: Wakeup::default(),
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
            let verified = self.frames.decode(start, start + BLOCK_FRAMES);
            *lock(slot) = Some(verified);
            if self.unfinished.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.finished.notify();
            }
        }
    }

    /// Waits until every block is finished, then returns the results in order. Spins a
    /// little first: the last block a helper is verifying is due within microseconds, sooner
    /// than a sleep and a wake-up take on the machine of `docs/PERFORMANCE.md`.
    fn collect(&self) -> Vec<Verified> {
        self.finished
            .wait_until(|| self.unfinished.load(Ordering::SeqCst) == 0);
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
            board: JobBoard::new(
                "kimberlite-verify",
                // Reads are rarely back to back closely enough to pay for a spinning core.
                Watch::Never,
            ),
        }
    }

    /// The threads a verification may use, the caller's included.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Wakes the helpers for a run of frames about to be handed to [`Self::decode`] (a read
    /// that may return [`WAKE_AHEAD_MIN_BYTES`] or more), so that they are running by then
    /// instead of waking when it comes. Nothing on one thread.
    pub fn wake_ahead(&mut self) {
        if self.threads > 1 {
            self.board.start_helpers(self.threads - 1);
            self.board.wake_ahead();
        }
    }

    /// [`verify_frame`](crate::verify::verify_frame) of every frame, in order: the same vector as
    /// `frames.decode(0, frames.len())` on one thread. Runs shorter than
    /// `2 * MIN_FRAMES_PER_THREAD` stay on the calling thread.
    pub fn decode(&mut self, frames: FrameRun) -> Vec<Verified> {
        let helpers = (self.threads - 1).min(frames.len() / MIN_FRAMES_PER_THREAD);
        if helpers == 0 || frames.len() < 2 * MIN_FRAMES_PER_THREAD {
            return frames.decode(0, frames.len());
        }
        self.board.start_helpers(helpers);
        let job = Arc::new(Job::new(frames));
        self.board.post(&job);
        job.run();
        let results = job.collect();
        self.board.clear(&job);
        results
    }
}

impl BoardJob for Job {
    fn run(&self) {
        Job::run(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::verify::decode_frames;
    use bytes::Bytes;
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
                assert_eq!(
                    pool.decode(FrameRun::of_frames(frames)),
                    expected,
                    "{threads} x {count}"
                );
            }
        }
    }
}
