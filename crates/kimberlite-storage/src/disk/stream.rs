//! One stream's in-memory state.
//!
//! A stream directory holds numbered segment files (`segment_file`), one sparse index per segment
//! (`index`) and a `manifest.json` (`manifest`). In memory a stream is its [`SegmentTable`]
//! (the shared rotation bookkeeping), one [`SegmentFiles`] per segment (path, index, and the
//! read-only map of a completed segment), the open active segment file and its read map
//! ([`ActiveMap`]), the chain head and, when recovery found corruption it must not repair, the
//! [`Damage`].
//!
//! Its verified reads are in `stream_read`.

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

use super::fs::FileSystem;
use super::index::SegmentIndex;
use super::pruned::PrunePoint;
use super::segment_file::{SegmentBytes, SEGMENT_HEADER_LEN};
use crate::chain::ChainCursor;
use crate::error::{Location, RecordError, StorageError};
use crate::rotation::SegmentTable;

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

impl SegmentFiles {
    /// A segment retention dropped: no file, its summary kept from the cut record so that the
    /// manifest still lists it. A walk never starts in it ([`StreamState::walk_start`]); one
    /// that reached it would find it empty and fail, never read data.
    pub fn pruned(dir: &std::path::Path, entry: &super::manifest::ManifestSegment) -> Self {
        let mut index = SegmentIndex::empty(entry.first_offset);
        index.summary.next_offset = entry.next_offset;
        index.summary.logical_size_bytes = entry.logical_size_bytes;
        index.summary.len_bytes = entry.file_size_bytes;
        Self {
            num: entry.segment_num,
            path: super::segment_file::segment_path(dir, entry.segment_num),
            index,
            map: Some(Bytes::new()),
        }
    }
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
    /// Where retention cut the stream (`pruned.json`), if it did: `segments` below
    /// `first_segment` are placeholders without files ([`SegmentFiles::pruned`]).
    pub pruned: Option<PrunePoint>,
}

impl<F: FileSystem> StreamState<F> {
    /// The stream's next offset.
    pub fn next_offset(&self) -> Offset {
        Offset::new(self.table.next_offset())
    }

    /// Where every walk from the stream's beginning starts: segment 0's first record, or the
    /// first kept record linked to the cut's chain hash when retention cut the stream.
    pub(super) fn walk_start(&self) -> (usize, u64, ChainCursor) {
        let header = SEGMENT_HEADER_LEN as u64;
        match &self.pruned {
            None => (0, header, ChainCursor::at_start(self.id)),
            Some(point) => (
                point.first_segment as usize,
                header,
                ChainCursor::resume(self.id, point.first_offset, Some(point.chain_hash)),
            ),
        }
    }

    /// The first offset the stream still holds (0 unless retention cut it).
    pub fn first_offset(&self) -> Offset {
        self.pruned
            .as_ref()
            .map_or(Offset::ZERO, |point| point.first_offset)
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

/// An I/O error on `path`.
pub fn io_error(path: &std::path::Path, source: std::io::Error) -> StorageError {
    if let Some(entry) = super::fs::UnexpectedEntry::in_error(&source) {
        return StorageError::UnexpectedEntry(entry.clone());
    }
    StorageError::Io {
        context: format!("on {}", path.display()),
        source,
    }
}
