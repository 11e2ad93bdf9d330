//! The verified walk over a stream's frames that every read and verification of `Storage`
//! makes, in three phases per chunk of frames:
//!
//! 1. **Scan** (sequential, cheap): [`Scanner`] finds the frames in order across segments,
//!    reading only each frame's length prefix to find the next one, and notes segment ends
//!    and I/O errors as [`Step`]s at their place in the order.
//! 2. **Decode and hash** (parallel): [`VerifyPool::decode`] checks each frame's CRC,
//!    decodes it and recomputes its chain hash on up to `verify_threads` threads. These are independent
//!    per frame (each frame carries its predecessor's hash) and are most of a read's cost.
//! 3. **Link** (sequential, cheap): the steps are replayed in order through a
//!    [`ChainCursor`]: a frame that failed to decode, a wrong offset, a broken link
//!    (`prev_hash` against the previous record's computed hash), a segment that ended early,
//!    an I/O error: the *first* in stream order is the error returned, exactly the one a
//!    one-frame-at-a-time walk returns, whatever the thread count.
//!
//! Phase 1 reads ahead of phase 3: a read scans as many frames as the headers (unchecked,
//! [`peek_frame`]) say it needs. What phase 3 does not reach (frames past the last one a
//! read returns, or past the first failure) is dropped unreported, as a sequential walk would
//! never have looked at it. The scan does not depend on the thread count, so the file
//! system sees the same reads with one thread or four (the simulator relies on that).

use kimberlite_types::Offset;

use super::fs::FileSystem;
use super::segment_file::{SegmentBytes, SEGMENT_HEADER_LEN};
use super::stream::{io_error, StreamState};
use crate::chain::ChainCursor;
use crate::error::{Location, StorageError};
use crate::parallel::VerifyPool;
use crate::record::{peek_frame, FrameHint};
use crate::verify::{FrameRun, VerifiedFrame};

/// Most frames scanned, then decoded and linked, at once: long enough for each parallel run
/// to pay for its threads, short enough that a chunk's frames (about 640 KB of 256-byte
/// events) are still in the core's cache when they are hashed after the scan, and their
/// results when they are linked (docs/PERFORMANCE.md, section "Design decisions").
const CHUNK_FRAMES: usize = 2048;

/// What the walk does after a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on to the next record.
    Continue,
    /// Stop here: the walk returns without looking further.
    Stop,
}

/// What a walk does with the records it verifies.
pub trait Visit {
    /// Planning, from a frame's *unchecked* header: whether the scan should also read the
    /// frame after this one. A wrong answer costs work (another chunk, or frames decoded for
    /// nothing), never correctness.
    fn plan(&mut self, hint: &FrameHint) -> bool;

    /// A record decoded, CRC-checked, hashed and linked, in stream order.
    fn visit(&mut self, frame: VerifiedFrame) -> Flow;
}

/// One step of a walk, in stream order.
enum Step {
    /// A frame starts here (its bytes are the chunk's next entry of `frames`).
    Frame { segment_index: usize, position: u64 },
    /// Segment `segment_index` ended here; the walk moves to the next one. The segment must
    /// have held the offsets up to `expected_next`.
    SegmentEnd {
        segment_index: usize,
        position: u64,
        expected_next: u64,
    },
    /// Reading the next frame failed.
    Io(StorageError),
    /// The stream's last frame ended here.
    End { segment_index: usize, position: u64 },
}

/// Phase 1: finds frames in order across a stream's segments.
struct Scanner<'a, F: FileSystem> {
    state: &'a StreamState<F>,
    segment_index: usize,
    position: u64,
    bytes: SegmentBytes<'a, F::File>,
    /// Nothing can follow: the end, an I/O error, or a frame whose length is unreadable
    /// (it fails to decode in phase 2 with the same error, so phase 3 stops there).
    done: bool,
}

impl<'a, F: FileSystem> Scanner<'a, F> {
    fn new(state: &'a StreamState<F>, segment_index: usize, position: u64) -> Self {
        Self {
            state,
            segment_index,
            position,
            bytes: state.view(segment_index),
            done: false,
        }
    }

    /// Scans the next chunk into `steps` and `frames` (cleared first), up to
    /// [`CHUNK_FRAMES`] frames, until `visit` plans no further, or to the end.
    fn next_chunk(&mut self, visit: &mut impl Visit, steps: &mut Vec<Step>, frames: &mut FrameRun) {
        steps.clear();
        frames.clear();
        let state = self.state;
        while !self.done && frames.len() < CHUNK_FRAMES {
            let (segment_index, position) = (self.segment_index, self.position);
            if position >= self.bytes.len() {
                if segment_index + 1 >= state.segments.len() {
                    steps.push(Step::End {
                        segment_index,
                        position,
                    });
                    self.done = true;
                    break;
                }
                let expected_next = state
                    .table
                    .segments()
                    .get(segment_index)
                    .map_or(0, |segment| segment.next_offset);
                steps.push(Step::SegmentEnd {
                    segment_index,
                    position,
                    expected_next,
                });
                self.segment_index += 1;
                self.position = SEGMENT_HEADER_LEN as u64;
                self.bytes = state.view(self.segment_index);
                continue;
            }
            let (source, start) = match self.bytes.frame_source(position) {
                Ok(found) => found,
                Err(error) => {
                    let path = state.location(segment_index, position).file;
                    steps.push(Step::Io(io_error(&path.unwrap_or_default(), error)));
                    self.done = true;
                    break;
                }
            };
            steps.push(Step::Frame {
                segment_index,
                position,
            });
            frames.push(source, start);
            match peek_frame(source.get(start..).unwrap_or_default()) {
                Ok(hint) => {
                    self.position += hint.frame_len as u64;
                    if !visit.plan(&hint) {
                        break;
                    }
                }
                Err(_) => self.done = true,
            }
        }
    }

    fn location(&self) -> Location {
        self.state.location(self.segment_index, self.position)
    }
}

/// Where a walk ended.
pub struct WalkStop {
    /// Past the last record visited.
    pub cursor: ChainCursor,
    /// When the visit stopped the walk: the segment and position of the frame after the last
    /// one visited, where a later walk (with `cursor`) can go on. `None` at the stream's end.
    pub stopped_before: Option<(usize, u64)>,
}

/// Walks `state` from `segment_index`/`position`, where `cursor` says what the first data
/// record must be, verifying every frame on `pool`'s threads and handing each record
/// to `visit` in order, until it says [`Flow::Stop`] or the stream ends (then the end is
/// checked too: every offset present, the last hash equal to the head held in memory).
pub fn walk<F: FileSystem>(
    state: &StreamState<F>,
    (segment_index, position, mut cursor): (usize, u64, ChainCursor),
    pool: &mut VerifyPool,
    visit: &mut impl Visit,
) -> Result<WalkStop, StorageError> {
    let mut scanner = Scanner::new(state, segment_index, position);
    let mut steps = Vec::new();
    let mut frames = FrameRun::default();
    loop {
        scanner.next_chunk(visit, &mut steps, &mut frames);
        if steps.is_empty() {
            // Only after a frame whose length is unreadable, and that frame never decodes:
            // phase 3 has already failed on it. Kept as an error rather than a panic.
            return Err(StorageError::MissingRecords {
                stream: state.id,
                offset: cursor.next_offset(),
                location: scanner.location(),
            });
        }
        let mut results = pool.decode(std::mem::take(&mut frames)).into_iter();
        for step in steps.drain(..) {
            match step {
                Step::Frame {
                    segment_index,
                    position,
                } => {
                    let location = || state.location(segment_index, position);
                    let frame = match results.next() {
                        Some(Ok(frame)) => frame,
                        Some(Err(source)) => {
                            return Err(StorageError::CorruptRecord {
                                stream: state.id,
                                offset: cursor.next_offset(),
                                location: location(),
                                source,
                            })
                        }
                        // One result per frame step, by construction.
                        None => {
                            return Err(StorageError::MissingRecords {
                                stream: state.id,
                                offset: cursor.next_offset(),
                                location: location(),
                            })
                        }
                    };
                    cursor.check_frame(&frame, location)?;
                    let next_position = position + frame.frame_len() as u64;
                    if visit.visit(frame) == Flow::Stop {
                        return Ok(WalkStop {
                            cursor,
                            stopped_before: Some((segment_index, next_position)),
                        });
                    }
                }
                Step::SegmentEnd {
                    segment_index,
                    position,
                    expected_next,
                } => {
                    if cursor.next_offset().as_u64() != expected_next {
                        return Err(StorageError::MissingRecords {
                            stream: state.id,
                            offset: cursor.next_offset().min(Offset::new(expected_next)),
                            location: state.location(segment_index, position),
                        });
                    }
                }
                Step::Io(error) => return Err(error),
                Step::End {
                    segment_index,
                    position,
                } => {
                    state.check_end(&cursor, state.location(segment_index, position))?;
                    return Ok(WalkStop {
                        cursor,
                        stopped_before: None,
                    });
                }
            }
        }
    }
}
