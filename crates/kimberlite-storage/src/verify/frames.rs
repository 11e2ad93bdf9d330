//! Pure, parallelisable verification of a run of frames: decode (length, CRC, fields) and
//! re-hash each one, independently of the others.
//!
//! On a read, unlike an append, the chain hashes are independent: each frame carries its
//! predecessor's hash, so frame `i` can be decoded and hashed without frame `i - 1`. Only the
//! *links* (frame `i + 1`'s `prev_hash` equals frame `i`'s computed hash) need the order; the
//! read paths check them afterwards, in offset order, with
//! [`crate::chain::ChainCursor::check_frame`]. So the expensive part of a verified read (the
//! SHA-256 of every record and its CRC32C) is split here across threads, while what decides
//! *which* error a damaged stream reports stays sequential.
//!
//! [`decode_frames`] is the one-thread reference; [`crate::verify_pool::VerifyPool`] runs the
//! same [`verify_frame`] on several threads and returns the same vector (tested there, with
//! proptest): the thread count changes the speed of a read, never its result.

use bytes::Bytes;
use kimberlite_crypto::ChainHash;

use crate::error::RecordError;
use crate::record::Record;

/// Fewest frames handed to each thread: below this a thread's start-up (about 10–20 µs on
/// the 2-core machine of `docs/PERFORMANCE.md`) costs more than the ~0.3 µs per frame it
/// would save, so shorter runs are verified on the calling thread.
pub const MIN_FRAMES_PER_THREAD: usize = 64;

/// Most threads a verification uses, whatever the machine offers: reads are short (a page
/// of events), so more threads would mostly pay for their own start-up.
pub const MAX_VERIFY_THREADS: usize = 4;

/// The default thread count of verified reads: the machine's available parallelism, capped
/// at [`MAX_VERIFY_THREADS`]; 1 when it cannot be known.
#[must_use]
pub fn default_verify_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_VERIFY_THREADS)
}

/// A frame that decoded (its length and CRC checked, every field valid) and, for a data
/// record, its chain hash as recomputed from its contents.
///
/// Only [`verify_frame`] makes one, so a hash held here is always the record's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedFrame {
    record: Record,
    hash: Option<ChainHash>,
    frame_len: usize,
}

impl VerifiedFrame {
    /// The decoded record.
    #[must_use]
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The record, by value (its payload is returned to the reader without a copy).
    #[must_use]
    pub fn into_record(self) -> Record {
        self.record
    }

    /// The record's chain hash; `None` for a restart record, which is not a link of the
    /// chain and is never hashed.
    #[must_use]
    pub fn hash(&self) -> Option<ChainHash> {
        self.hash
    }

    /// Bytes of the frame as stored.
    #[must_use]
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }
}

/// Decodes the frame at the start of `bytes` and, for a data record, recomputes its chain
/// hash. Pure; never panics.
pub fn verify_frame(bytes: &Bytes) -> Result<VerifiedFrame, RecordError> {
    verify_frame_at(bytes, 0)
}

/// [`verify_frame`] of the frame that starts `start` bytes into `source`.
pub fn verify_frame_at(source: &Bytes, start: usize) -> Result<VerifiedFrame, RecordError> {
    let (record, frame_len) = Record::from_bytes_at(source, start)?;
    let hash = (!record.is_restart()).then(|| record.compute_hash());
    Ok(VerifiedFrame {
        record,
        hash,
        frame_len,
    })
}

/// [`verify_frame`] of every frame, in order, on the calling thread: the reference that
/// [`crate::verify_pool::VerifyPool::decode`] (the same work on several threads) must equal.
#[must_use]
pub fn decode_frames(frames: &[Bytes]) -> Vec<Result<VerifiedFrame, RecordError>> {
    frames.iter().map(verify_frame).collect()
}

/// A run of frames to verify, each where it lies in one of a few shared buffers (a mapped
/// segment, a read window).
///
/// Why not a `Bytes` per frame: every `Bytes` of a mapped segment shares one reference count,
/// so a slice per frame, and its drop, were two atomic operations per frame on one cache
/// line, made by the reading thread and fought over by the verifying threads (~6% of a
/// 1,000-event read's samples). Here a buffer is counted once per run, and only a returned
/// payload is a `Bytes` of its own.
#[derive(Debug, Default, Clone)]
pub struct FrameRun {
    sources: Vec<Bytes>,
    /// Each frame: the index of its buffer in `sources`, and where in it the frame starts.
    frames: Vec<(usize, usize)>,
}

impl FrameRun {
    /// A run of `frames`, each its own buffer.
    #[must_use]
    pub fn of_frames(frames: Vec<Bytes>) -> Self {
        Self {
            frames: (0..frames.len()).map(|index| (index, 0)).collect(),
            sources: frames,
        }
    }

    /// Adds the frame that starts `start` bytes into `source` (shared with the frame before
    /// when it is the same buffer).
    pub fn push(&mut self, source: &Bytes, start: usize) {
        let same = self
            .sources
            .last()
            .is_some_and(|last| last.as_ptr() == source.as_ptr() && last.len() == source.len());
        if !same {
            self.sources.push(source.clone());
        }
        self.frames.push((self.sources.len() - 1, start));
    }

    /// Frames in the run.
    #[must_use]
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when the run has no frame.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Empties the run, keeping its memory.
    pub fn clear(&mut self) {
        self.sources.clear();
        self.frames.clear();
    }

    /// [`verify_frame`] of frames `start..end` of the run (as many as there are), in order.
    #[must_use]
    pub fn decode(&self, start: usize, end: usize) -> Vec<Result<VerifiedFrame, RecordError>> {
        let end = end.min(self.frames.len());
        self.frames
            .get(start.min(end)..end)
            .unwrap_or_default()
            .iter()
            .map(|&(source, at)| match self.sources.get(source) {
                Some(bytes) => verify_frame_at(bytes, at),
                None => verify_frame_at(&Bytes::new(), 0),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kimberlite_types::{CompressionKind, Offset, RecordKind};
    use proptest::prelude::*;

    /// Frames of a chain of `count` records with payloads of `size` bytes, a restart record
    /// after every 7th, optionally LZ4-compressed.
    fn frames(count: usize, size: usize, compression: CompressionKind) -> Vec<Bytes> {
        let mut prev = None;
        let mut out = Vec::new();
        for i in 0..count {
            let payload = Bytes::from(vec![(i % 251) as u8; size]);
            let record = Record::with_compression(
                Offset::new(i as u64),
                prev,
                RecordKind::Data,
                compression,
                payload,
            );
            prev = Some(record.compute_hash());
            out.push(record.to_bytes());
            if i % 7 == 6 {
                let restart = Record::with_compression(
                    Offset::new(i as u64 + 1),
                    prev,
                    RecordKind::Restart,
                    CompressionKind::None,
                    Bytes::new(),
                );
                out.push(restart.to_bytes());
            }
        }
        out
    }

    #[test]
    fn data_records_are_hashed_and_restart_records_are_not() {
        let frames = frames(7, 10, CompressionKind::None);
        let results = decode_frames(&frames);
        let verified: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(verified.len(), 8);
        for (frame, bytes) in verified.iter().zip(&frames) {
            assert_eq!(frame.frame_len(), bytes.len());
            let record = frame.record();
            if record.is_restart() {
                assert_eq!(frame.hash(), None);
            } else {
                assert_eq!(frame.hash(), Some(record.compute_hash()));
            }
        }
        // Each hash is the next data record's prev_hash: the chain the cursor checks.
        assert_eq!(verified[0].hash(), verified[1].record().prev_hash());
    }

    #[test]
    fn errors_stay_at_their_frame() {
        let mut frames = frames(400, 30, CompressionKind::None);
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
        let mut pool = crate::verify_pool::VerifyPool::new(4);
        assert_eq!(pool.decode(FrameRun::of_frames(frames.clone())), one);
    }

    /// Frames found inside shared buffers (several per buffer, some buffers repeated) verify
    /// exactly as the same frames cut out one by one.
    #[test]
    fn a_run_over_shared_buffers_equals_the_frames_cut_out() {
        let frames = frames(300, 40, CompressionKind::Lz4);
        let mut joined = Vec::new();
        let mut starts = Vec::new();
        for frame in &frames {
            starts.push(joined.len());
            joined.extend_from_slice(frame);
        }
        let joined = Bytes::from(joined);
        let window = joined.slice(starts[100]..);
        let mut run = FrameRun::default();
        for (index, start) in starts.iter().enumerate() {
            if index < 100 {
                run.push(&joined, *start);
            } else {
                run.push(&window, start - starts[100]);
            }
        }
        assert_eq!(run.len(), frames.len());
        assert_eq!(run.sources.len(), 2, "one entry per buffer");
        let expected = decode_frames(&frames);
        assert_eq!(run.decode(0, run.len()), expected);
        assert_eq!(run.decode(250, 10_000), expected[250..]);
        assert!(run.decode(400, 500).is_empty());
        // A start past a buffer's end is a frame that does not decode, not a panic.
        let mut past = FrameRun::default();
        past.push(&window, window.len() + 7);
        assert!(past.decode(0, 1)[0].is_err());
        run.clear();
        assert!(run.is_empty());
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
            let mut frames = frames(count, size, compression);
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
            let mut pool = crate::verify_pool::VerifyPool::new(threads);
            prop_assert_eq!(pool.decode(FrameRun::of_frames(frames)), expected);
        }
    }
}
