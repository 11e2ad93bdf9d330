//! One stream's in-memory state and its verified read paths.
//!
//! A stream directory holds numbered segment files (`segment`), one sparse index per segment
//! (`index`) and a `manifest.json` (`manifest`). In memory a stream is its [`SegmentTable`]
//! (the shared rotation bookkeeping), one [`SegmentFiles`] per segment (path, index, and the
//! read-only map of a completed segment), the open active segment file and its read map
//! ([`ActiveMap`]), the chain head and, when recovery found corruption it must not repair, the
//! [`Damage`].
//!
//! Every read goes through [`walk`]: frames are decoded (length and CRC first) and hashed,
//! on several threads for long runs, then linked in order with a [`ChainCursor`], so a
//! changed, missing or reordered byte is an error naming the stream, offset, segment file and
//! byte position, never data.

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

use super::fs::FileSystem;
use super::index::SegmentIndex;
use super::segment_file::{SegmentBytes, SEGMENT_HEADER_LEN};
use super::walk::{walk, Flow, Visit};
use crate::chain::{decode_at, ChainCursor};
use crate::error::{Location, RecordError, StorageError};
use crate::parallel::VerifyPool;
use crate::record::FrameHint;
use crate::rotation::SegmentTable;
use crate::verify::VerifiedFrame;
use crate::verify::VerifyReport;
use crate::verify::{VerifyResume, VerifyStep};

/// One segment's files.
#[derive(Debug)]
pub struct SegmentFiles {
    /// Segment number (equal to its position in the stream's list).
    pub num: u32,
    /// The segment file.
    pub path: PathBuf,
    /// Its sparse index and summary.
    pub index: SegmentIndex,
    /// The whole file, mapped read-only, once the segment is completed.
    pub map: Option<Bytes>,
}

/// Corruption recovery found and left in place: reads that reach it fail with it, appends to
/// the stream are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The offset whose record is damaged (or missing).
    pub offset: Offset,
    /// Where.
    pub location: Location,
    /// What is wrong.
    pub reason: DamageReason,
    /// How many bytes of the active segment reads may look at (the whole file, so that a
    /// read reaching the damage decodes it and reports it).
    pub view_len: u64,
}

/// What recovery found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DamageReason {
    /// A frame does not decode.
    Record(RecordError),
    /// A frame decodes but holds another offset.
    Offset {
        /// The offset it holds.
        found: Offset,
    },
    /// A frame's link does not match the chain.
    Chain {
        /// The hash the chain requires.
        expected: Option<ChainHash>,
        /// The hash found.
        actual: Option<ChainHash>,
    },
    /// The file ends before bytes the manifest recorded as durable.
    Missing,
}

impl Damage {
    /// The damage described by a corruption error, `None` for other errors.
    #[must_use]
    pub fn from_error(error: &StorageError, view_len: u64) -> Option<Damage> {
        let (offset, location, reason) = match error {
            StorageError::CorruptRecord {
                offset,
                location,
                source,
                ..
            } => (*offset, location, DamageReason::Record(source.clone())),
            StorageError::OffsetMismatch {
                offset,
                found,
                location,
                ..
            } => (*offset, location, DamageReason::Offset { found: *found }),
            StorageError::ChainVerificationFailed {
                offset,
                location,
                expected,
                actual,
                ..
            } => (
                *offset,
                location,
                DamageReason::Chain {
                    expected: *expected,
                    actual: *actual,
                },
            ),
            StorageError::MissingRecords {
                offset, location, ..
            } => (*offset, location, DamageReason::Missing),
            _ => return None,
        };
        Some(Damage {
            offset,
            location: location.clone(),
            reason,
            view_len,
        })
    }

    /// The error a read reaching the damage (or an append to the stream) returns.
    #[must_use]
    pub fn to_error(&self, stream: StreamId) -> StorageError {
        let location = self.location.clone();
        let offset = self.offset;
        match &self.reason {
            DamageReason::Record(source) => StorageError::CorruptRecord {
                stream,
                offset,
                location,
                source: source.clone(),
            },
            DamageReason::Offset { found } => StorageError::OffsetMismatch {
                stream,
                offset,
                found: *found,
                location,
            },
            DamageReason::Chain { expected, actual } => StorageError::ChainVerificationFailed {
                stream,
                offset,
                location,
                expected: *expected,
                actual: *actual,
            },
            DamageReason::Missing => StorageError::MissingRecords {
                stream,
                offset,
                location,
            },
        }
    }
}

/// The active segment mapped ahead of its end ([`FileSystem::map_growing`]), so that reads
/// near the end of a stream take its bytes from the page cache as reads of completed
/// segments do, instead of copying them into a buffer. Made at the first read of the segment
/// (reads are what use it; a `OnceLock`, so that reads sharing the store make it once),
/// dropped at rotation, when the completed segment is mapped whole.
#[derive(Debug)]
pub enum ActiveMap {
    /// Mapped `capacity` bytes ahead; reads slice it to the written length.
    Mapped(Bytes),
    /// The file system does not map growing files (or the map failed): reads go through the
    /// file.
    Unavailable,
}

/// A stream whose files `open` could not reconcile without guessing (what
/// [`StorageError::Unrecoverable`] describes): nothing of it is opened or changed, and every
/// call on it returns that error again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unopened {
    /// The file or directory concerned.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl Unopened {
    /// The error calls on stream `stream` return.
    #[must_use]
    pub fn to_error(&self, stream: StreamId) -> StorageError {
        StorageError::Unrecoverable {
            stream,
            path: self.path.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// One stream, open.
pub struct StreamState<F: FileSystem> {
    /// The stream.
    pub id: StreamId,
    /// Its directory.
    pub dir: PathBuf,
    /// Rotation bookkeeping shared with `MemoryStorage`.
    pub table: SegmentTable,
    /// One entry per segment of `table`, same order.
    pub segments: Vec<SegmentFiles>,
    /// The active (last) segment file, open for appending.
    pub active: F::File,
    /// The active segment, mapped for reads (unset until the first read of the segment).
    pub active_map: OnceLock<ActiveMap>,
    /// Chain hash of the last data record.
    pub head: Option<ChainHash>,
    /// Corruption found by recovery, if any.
    pub damage: Option<Damage>,
    /// Bytes of the active segment known to be on stable storage.
    pub synced_len: u64,
    /// How far the active segment's blocks are allocated ahead of its writes
    /// (`allocate`); 0 when unknown.
    pub allocated_to: u64,
    /// The active segment's length the manifest records (its durable watermark).
    pub manifest_len: u64,
    /// Whether the active segment's index changed since it was last written.
    pub index_dirty: bool,
    /// Whether recovery reported a chain break (row 9b) in the active segment: its index is
    /// then written without a resume point, so that every open scans it and reports it again.
    pub chain_break: bool,
}

impl<F: FileSystem> StreamState<F> {
    /// The stream's next offset.
    pub fn next_offset(&self) -> Offset {
        Offset::new(self.table.next_offset())
    }

    /// The active segment's files.
    pub fn active_files(&self) -> Option<&SegmentFiles> {
        self.segments.last()
    }

    /// Where a record of segment `segment_index` at `position` is.
    pub fn location(&self, segment_index: usize, position: u64) -> Location {
        let files = self.segments.get(segment_index);
        Location {
            segment: files.map_or(0, |files| files.num),
            position,
            file: files.map(|files| files.path.clone()),
        }
    }

    /// A byte view of segment `segment_index`.
    pub(super) fn view(&self, segment_index: usize) -> SegmentBytes<'_, F::File> {
        let files = self.segments.get(segment_index);
        if let Some(map) = files.and_then(|files| files.map.clone()) {
            return SegmentBytes::Mapped(map);
        }
        let len = match &self.damage {
            Some(damage) => damage.view_len,
            None => files.map_or(0, |files| files.index.summary.len_bytes),
        };
        if let Some(ActiveMap::Mapped(map)) = self.active_map.get() {
            // Only the written bytes: the map runs past the end of the file.
            let end = usize::try_from(len).unwrap_or(usize::MAX);
            if segment_index + 1 == self.segments.len() && end <= map.len() {
                return SegmentBytes::Mapped(map.slice(..end));
            }
        }
        SegmentBytes::file(&self.active, len)
    }

    /// Maps the active segment for reads, `capacity` bytes ahead, unless already tried for
    /// this segment ([`ActiveMap`]).
    pub fn map_active(&self, fs: &F, capacity: u64) {
        let Some(files) = self.segments.last() else {
            return;
        };
        self.active_map
            .get_or_init(|| match fs.map_growing(&files.path, capacity) {
                Ok(Some(map)) => ActiveMap::Mapped(map),
                Ok(None) | Err(_) => ActiveMap::Unavailable,
            });
    }

    /// Where a verified read of `from` starts: the nearest restart record at or before it (found
    /// through the indexes) that is there, else the stream's first record.
    ///
    /// An index entry is only a hint: one that does not lead to the restart record it names
    /// (an index rewritten wrong with a valid CRC, found by an adversarial test: every read
    /// through it failed and named the intact segment as corrupt) is passed over for the one
    /// before it. Damage really at a restart record is then met by the walk from further back, and
    /// reported where it is.
    fn start_for(&self, from: u64) -> Result<(usize, u64, ChainCursor), StorageError> {
        let last = self.segments.len().saturating_sub(1);
        let segment_index = self
            .table
            .segment_of(from)
            .map_or(last, |segment| segment.segment_num as usize);
        for index in (0..=segment_index).rev() {
            let Some(files) = self.segments.get(index) else {
                continue;
            };
            let mut before = Some(from);
            while let Some(entry) = before.and_then(|at| files.index.restart_at_or_before(at)) {
                before = entry.offset.checked_sub(1);
                let Ok(frame) = self.view(index).frame_at(entry.position) else {
                    continue;
                };
                let location = || self.location(index, entry.position);
                let Ok((record, _)) =
                    decode_at(self.id, Offset::new(entry.offset), &frame, location)
                else {
                    continue;
                };
                if record.is_restart() && record.offset().as_u64() == entry.offset {
                    let cursor = ChainCursor::resume(self.id, record.offset(), record.prev_hash());
                    return Ok((index, entry.position, cursor));
                }
            }
        }
        Ok((0, SEGMENT_HEADER_LEN as u64, ChainCursor::at_start(self.id)))
    }

    /// Verified payloads from `from` on, frames decoded and hashed on `pool`'s threads; see `StorageBackend::read_from` and [`walk`].
    pub fn read_from(
        &self,
        from: u64,
        max_bytes: u64,
        pool: &mut VerifyPool,
    ) -> Result<Vec<Bytes>, StorageError> {
        if from >= self.table.next_offset() && self.damage.is_none() {
            return Ok(Vec::new());
        }
        let start = self.start_for(from)?;
        let records_left = self.table.next_offset().saturating_sub(from);
        pool.wake_ahead(max_bytes, records_left);
        let mut read = ReadVisit::new(from, max_bytes);
        walk(self, start, pool, &mut read)?;
        Ok(read.payloads)
    }

    /// Walks every record from the first, or from where `from` paused, checking every CRC
    /// and link, frames decoded and hashed on `pool`'s threads; pauses after `max_records`
    /// data records (`handle` names the storage handle in the pause point). See
    /// [`crate::verify::pieces`].
    pub fn verify(
        &self,
        pool: &mut VerifyPool,
        (handle, from, max_records): (u64, Option<VerifyResume>, u64),
        on_event: impl FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError> {
        let (start, restart_records, bytes) = match from {
            None => (
                (0, SEGMENT_HEADER_LEN as u64, ChainCursor::at_start(self.id)),
                0,
                0,
            ),
            Some(resume) => {
                resume.check_owner(handle, self.id)?;
                // Segments are never removed, so a pause point of this handle names one of
                // them; kept as an error rather than an out-of-bounds panic.
                if resume.segment_index >= self.segments.len() {
                    return Err(StorageError::ForeignResume {
                        stream: self.id,
                        paused_on: format!(
                            "segment {}, which this stream does not have",
                            resume.segment_index
                        ),
                    });
                }
                let start = (resume.segment_index, resume.position, resume.cursor);
                (start, resume.restart_records, resume.bytes)
            }
        };
        let mut counts = VerifyVisit {
            restart_records,
            bytes,
            records_left: max_records,
            on_event,
        };
        let end = walk(self, start, pool, &mut counts)?;
        let cursor = end.cursor;
        Ok(match end.stopped_before {
            Some((segment_index, position)) => VerifyStep::Paused(VerifyResume {
                handle,
                cursor,
                segment_index,
                position,
                restart_records: counts.restart_records,
                bytes: counts.bytes,
            }),
            None => VerifyStep::Done(VerifyReport {
                stream: self.id,
                records_checked: cursor.next_offset().as_u64(),
                restart_records_checked: counts.restart_records,
                segments_checked: self.segments.len(),
                bytes_checked: counts.bytes,
                head: cursor.prev_hash(),
                next_offset: cursor.next_offset(),
            }),
        })
    }

    /// Checks a walk that reached the end of the stream (at `location`): every offset was
    /// seen and the last record hashes to the head held in memory.
    pub(super) fn check_end(
        &self,
        cursor: &ChainCursor,
        location: Location,
    ) -> Result<(), StorageError> {
        if let Some(damage) = &self.damage {
            return Err(damage.to_error(self.id));
        }
        if cursor.next_offset() != self.next_offset() {
            return Err(StorageError::MissingRecords {
                stream: self.id,
                offset: cursor.next_offset(),
                location,
            });
        }
        if cursor.prev_hash() != self.head {
            return Err(StorageError::ChainVerificationFailed {
                stream: self.id,
                offset: Offset::new(cursor.next_offset().as_u64().saturating_sub(1)),
                location,
                expected: self.head,
                actual: cursor.prev_hash(),
            });
        }
        Ok(())
    }
}

/// What `read_from` keeps of a walk: payloads from `from` on until `max_bytes`, then the one
/// more record whose link vouches for the last payload returned.
struct ReadVisit {
    from: u64,
    max_bytes: u64,
    payloads: Vec<Bytes>,
    payload_bytes: u64,
    budget_reached: bool,
    /// The same rule applied to unchecked headers, to plan the scan (see [`Visit::plan`]).
    planned_bytes: u64,
    planned_reached: bool,
}

impl ReadVisit {
    fn new(from: u64, max_bytes: u64) -> Self {
        Self {
            from,
            max_bytes,
            payloads: Vec::new(),
            payload_bytes: 0,
            budget_reached: false,
            planned_bytes: 0,
            planned_reached: false,
        }
    }
}

impl Visit for ReadVisit {
    fn plan(&mut self, hint: &FrameHint) -> bool {
        if self.planned_reached {
            // The frame just scanned is the one past the budget: its link is the last check.
            return false;
        }
        if !hint.is_restart && hint.offset.as_u64() >= self.from {
            self.planned_bytes = self.planned_bytes.saturating_add(hint.payload_len);
            self.planned_reached = self.planned_bytes >= self.max_bytes;
        }
        true
    }

    fn visit(&mut self, frame: VerifiedFrame) -> Flow {
        let record = frame.into_record();
        if self.budget_reached {
            // The link after the last record returned is checked: done.
            return Flow::Stop;
        }
        if !record.is_restart() && record.offset().as_u64() >= self.from {
            let payload = record.into_payload();
            self.payload_bytes += payload.len() as u64;
            self.payloads.push(payload);
            self.budget_reached = self.payload_bytes >= self.max_bytes;
        }
        Flow::Continue
    }
}

/// What `verify` counts of a walk over the whole stream, and where it hands each event.
struct VerifyVisit<E> {
    restart_records: u64,
    bytes: u64,
    /// Data records this piece may still visit before it pauses.
    records_left: u64,
    on_event: E,
}

impl<E: FnMut(Offset, &Bytes)> Visit for VerifyVisit<E> {
    fn plan(&mut self, _: &FrameHint) -> bool {
        true
    }

    fn visit(&mut self, frame: VerifiedFrame) -> Flow {
        let record = frame.record();
        self.bytes += frame.frame_len() as u64;
        if record.is_restart() {
            self.restart_records += 1;
            return Flow::Continue;
        }
        (self.on_event)(record.offset(), record.payload());
        self.records_left = self.records_left.saturating_sub(1);
        if self.records_left == 0 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

/// An I/O error on `path`.
pub fn io_error(path: &std::path::Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        context: format!("on {}", path.display()),
        source,
    }
}
