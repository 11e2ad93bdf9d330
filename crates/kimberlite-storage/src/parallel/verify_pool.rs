//! [`VerifyPool`]: the helper threads a store keeps to run
//! [`verify_frame`](crate::verify::verify_frame) over a run of frames on several cores (see
//! [`crate::verify::frames`] for why that is sound).
//!
//! Why a pool and not `std::thread::scope` per read: a scoped thread costs its start-up on
//! every read and, worse, joining it waits until the scheduler has run it, so on a busy
//! machine a read slowed to the scheduler's latency (docs/PERFORMANCE.md, section "Design
//! decisions"). Here the helpers are started once, and the work is split into small blocks
//! that whoever is running claims next (an atomic counter): the calling thread never waits
//! for a helper that has not started, only for a block a helper is in the middle of (at most
//! [`BLOCK_FRAMES`] frames). On a busy machine a read degrades to the one-thread speed.
//!
//! Results are the same vector [`FrameRun::decode`] returns on one thread, whatever the
//! helpers did (tested below).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::job_board::{lock, BoardJob, JobBoard, Wakeup, Watch};
use crate::error::RecordError;
use crate::verify::{FrameRun, VerifiedFrame};

/// Fewest frames handed to each thread: below this a thread's hand-off costs more than the
/// frames it would verify save, so shorter runs are verified on the calling thread.
pub(crate) const MIN_FRAMES_PER_THREAD: usize = 64;

/// Most threads a verification uses, whatever the machine offers: reads are short (a page
/// of events), so more threads would mostly pay for their own start-up.
pub(crate) const MAX_VERIFY_THREADS: usize = 4;

/// The default thread count of verified reads: the machine's available parallelism, capped
/// at [`MAX_VERIFY_THREADS`]; 1 when it cannot be known.
#[must_use]
pub(crate) fn default_verify_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_VERIFY_THREADS)
}

/// Frames a verified read hands to one thread at a time (a block): a read of a long run of
/// frames is verified block by block on the store's verify threads
/// ([`StorageConfig::verify_threads`](crate::StorageConfig::verify_threads)). Public for
/// tests that damage the first frame of a block; results never depend on it.
///
/// Small enough that a helper preempted in the middle of one delays the caller little, large
/// enough that claiming one (an atomic add) is noise.
pub const BLOCK_FRAMES: usize = 32;

/// Reads that may return this many payload bytes or more wake the helpers before they read
/// their frames ([`VerifyPool::wake_ahead`]): enough for `2 * MIN_FRAMES_PER_THREAD` frames of
/// 256-byte events, the size below which a run stays on the calling thread anyway.
pub(crate) const WAKE_AHEAD_MIN_BYTES: u64 = 2 * MIN_FRAMES_PER_THREAD as u64 * 256;

type Verified = Result<VerifiedFrame, RecordError>;

/// Helper threads that verify frames for a store; see the module docs. Dropping the pool
/// stops and joins its helpers.
#[derive(Debug)]
pub(crate) struct VerifyPool {
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
    /// little first ([`Wakeup::wait_until`]): the last block a helper is verifying is due
    /// sooner than a sleep and a wake-up take.
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
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            threads: threads.clamp(1, MAX_VERIFY_THREADS),
            board: JobBoard::new(
                "kimberlite-verify",
                // Reads are rarely back to back closely enough to pay for a spinning core.
                Watch::Never,
            ),
        }
    }

    #[cfg(test)]
    /// The threads a verification may use, the caller's included.
    #[must_use]
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Wakes the helpers for a run of frames about to be handed to [`Self::decode`], so that
    /// they are running by then instead of waking when it comes: for a read that may return
    /// `max_bytes` of [`WAKE_AHEAD_MIN_BYTES`] or more, from a stream with `records_left` enough
    /// to be split across threads. Nothing on one thread.
    pub(crate) fn wake_ahead(&mut self, max_bytes: u64, records_left: u64) {
        let worth_it =
            max_bytes >= WAKE_AHEAD_MIN_BYTES && records_left >= 2 * MIN_FRAMES_PER_THREAD as u64;
        if worth_it && self.threads > 1 {
            self.board.start_helpers(self.threads - 1);
            self.board.wake_ahead();
        }
    }

    /// [`verify_frame`](crate::verify::verify_frame) of every frame, in order: the same vector as
    /// `frames.decode(0, frames.len())` on one thread. Runs shorter than
    /// `2 * MIN_FRAMES_PER_THREAD` stay on the calling thread.
    pub(crate) fn decode(&mut self, frames: FrameRun) -> Vec<Verified> {
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
    use crate::verify::frames::tests::frames as chain_frames;
    use bytes::Bytes;
    use kimberlite_types::CompressionKind;
    use kimberlite_types::Offset;
    use proptest::prelude::*;

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

    #[test]
    fn errors_stay_at_their_frame() {
        let mut frames = chain_frames(400, 30, CompressionKind::None);
        // Corrupt frames in the first share, at a share boundary and in the last share.
        for at in [5, 199, 200, 201, 450] {
            let mut bytes = frames[at].to_vec();
            let last = bytes.len() - 5;
            bytes[last] ^= 0x40;
            frames[at] = Bytes::from(bytes);
        }
        frames[300] = Bytes::from_static(b"\x02\x00");
        let one = decode_frames(&frames);
        for (i, result) in one.iter().enumerate() {
            assert_eq!(
                result.is_err(),
                [5, 199, 200, 201, 300, 450].contains(&i),
                "frame {i}"
            );
        }
        let mut pool = VerifyPool::new(4);
        assert_eq!(pool.decode(FrameRun::of_frames(frames.clone())), one);
    }

    #[test]
    fn default_thread_count_is_within_bounds() {
        let threads = default_verify_threads();
        assert!((1..=MAX_VERIFY_THREADS).contains(&threads));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The parallel variant (the pool) equals the sequential one, bit for bit, for any run length,
        /// payload size, codec, thread count and corrupted byte.
        #[test]
        fn parallel_equals_sequential(
            count in 0usize..400,
            size in 0usize..300,
            lz4 in any::<bool>(),
            threads in 1usize..6,
            flip in proptest::option::of((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1u8..=255)),
        ) {
            let compression = if lz4 { CompressionKind::Lz4 } else { CompressionKind::None };
            let mut frames = chain_frames(count, size, compression);
            if let Some((frame, byte, mask)) = flip {
                if !frames.is_empty() {
                    let at = frame.index(frames.len());
                    let mut bytes = frames[at].to_vec();
                    let pos = byte.index(bytes.len());
                    bytes[pos] ^= mask;
                    frames[at] = Bytes::from(bytes);
                }
            }
            let expected = decode_frames(&frames);
            let mut pool = VerifyPool::new(threads);
            prop_assert_eq!(pool.decode(FrameRun::of_frames(frames)), expected);
        }
    }
}
