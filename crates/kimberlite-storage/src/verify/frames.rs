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
//! [`decode_frames`] is the one-thread reference; `crate::parallel` runs the same
//! [`verify_frame`] on several threads and returns the same vector (tested there, with
//! proptest): the thread count changes the speed of a read, never its result.

use bytes::Bytes;
use kimberlite_crypto::ChainHash;

use crate::error::RecordError;
use crate::record::Record;

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

#[cfg(test)]
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

#[cfg(test)]
/// [`verify_frame`] of every frame, in order, on the calling thread: the reference that
/// `crate::parallel` (the same work on several threads) must equal.
#[must_use]
pub fn decode_frames(frames: &[Bytes]) -> Vec<Result<VerifiedFrame, RecordError>> {
    frames.iter().map(verify_frame).collect()
}

/// A run of frames to verify, each where it lies in one of a few shared buffers (a mapped
/// segment, a read window).
///
/// Why not a `Bytes` per frame: every `Bytes` of a mapped segment shares one reference count,
/// so a slice per frame, and its drop, would be two atomic operations per frame on one cache
/// line, made by the reading thread and fought over by the verifying threads. Here a buffer
/// is counted once per run, and only a returned payload is a `Bytes` of its own.
#[derive(Debug, Default, Clone)]
pub struct FrameRun {
    sources: Vec<Bytes>,
    /// Each frame: the index of its buffer in `sources`, and where in it the frame starts.
    frames: Vec<(usize, usize)>,
}

impl FrameRun {
    #[cfg(test)]
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

    #[cfg(test)]
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
pub(crate) mod tests {
    use super::*;
    use kimberlite_types::{CompressionKind, Offset, RecordKind};

    /// Frames of a chain of `count` records with payloads of `size` bytes, a restart record
    /// after every 7th, optionally LZ4-compressed.
    pub(crate) fn frames(count: usize, size: usize, compression: CompressionKind) -> Vec<Bytes> {
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
}
