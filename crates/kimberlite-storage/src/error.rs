//! Typed errors of the storage layer.
//!
//! Two levels, as in `fjall`: [`RecordError`] says what is wrong with one frame of bytes and
//! knows nothing of streams; [`StorageError`] is what backends return, and every variant about
//! data names the stream and offset it concerns, and for corruption where the bytes live
//! ([`Location`]). No error path returns data: a corrupt byte is reported, never read past.

use std::fmt;
use std::path::PathBuf;

use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

/// Why a byte frame does not decode as a [`crate::Record`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Fewer bytes are available than the frame needs (a torn or cut-off record).
    #[error("truncated record: needs {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the frame needs (the length prefix, or the whole frame once that is known).
        needed: u64,
        /// Bytes that were available.
        available: u64,
    },
    /// The length prefix is smaller than the smallest possible frame.
    #[error("record frame length {len} is below the minimum of {min} bytes")]
    FrameTooSmall {
        /// Length read from the prefix.
        len: u64,
        /// Smallest valid frame length.
        min: u64,
    },
    /// The length prefix is larger than any frame this format allows.
    #[error("record frame length {len} exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Length read from the prefix.
        len: u64,
        /// Largest valid frame length.
        max: u64,
    },
    /// The CRC32C stored in the frame does not match its bytes.
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// CRC32C read from the frame's trailer.
        stored: u32,
        /// CRC32C computed over the frame's bytes.
        computed: u32,
    },
    /// The frame was written by a format version this code does not know.
    #[error("unsupported record format version {0}")]
    UnsupportedVersion(u8),
    /// The kind byte names no [`kimberlite_types::RecordKind`].
    #[error("unknown record kind byte {0}")]
    UnknownKind(u8),
    /// The compression byte names no [`kimberlite_types::CompressionKind`].
    #[error("unknown compression byte {0}")]
    UnknownCompression(u8),
    /// Reserved flag bits are set.
    #[error("unknown record flags {0:#04x}")]
    UnknownFlags(u8),
    /// The declared payload length is over [`crate::MAX_PAYLOAD_LEN`].
    #[error("record payload length {len} exceeds the maximum of {max} bytes")]
    PayloadTooLarge {
        /// Declared uncompressed payload length.
        len: u64,
        /// Largest allowed payload.
        max: u64,
    },
    /// The stored payload does not have the length the header declares.
    #[error("record payload length mismatch: header says {declared} bytes, found {actual}")]
    PayloadLengthMismatch {
        /// Length declared in the header.
        declared: u64,
        /// Length actually stored (or produced by decompression).
        actual: u64,
    },
    /// The compressed payload does not decompress.
    #[error("record payload does not decompress: {0}")]
    Decompression(String),
    /// The segment ends inside a batch: whole frames of a batch whose last frame (the one
    /// without flag bit 1, `docs/FORMAT.md`) was never written.
    #[error(
        "a batch never completely written: {data_records} events from offset {first_offset} \
         on, without the batch's end"
    )]
    IncompleteBatch {
        /// Offset of the batch's first event.
        first_offset: u64,
        /// Whole data records of the batch found.
        data_records: u64,
    },
}

/// Where a record's bytes live: a segment and a byte position inside it.
///
/// For `MemoryStorage` the segment is the notional one and the position counts the bytes of
/// the records before it in that segment, as they would be laid out on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Segment number (0-based).
    pub segment: u32,
    /// Byte position of the record's first byte inside the segment.
    pub position: u64,
    /// The segment file, when the backend has files.
    pub file: Option<PathBuf>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "segment {}", self.segment)?;
        if let Some(file) = &self.file {
            write!(f, " ({})", file.display())?;
        }
        write!(f, ", byte {}", self.position)
    }
}

/// Errors returned by a [`crate::StorageBackend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// `append_batch` was called with an `expected_offset` that is not the stream's next
    /// offset. Nothing was written.
    #[error(
        "stream {stream}: append expected next offset {expected}, \
         but the stream's next offset is {actual}; nothing was written"
    )]
    UnexpectedOffset {
        /// The stream appended to.
        stream: StreamId,
        /// The `expected_offset` the caller passed.
        expected: Offset,
        /// The stream's real next offset.
        actual: Offset,
    },
    /// `append_batch` was called with a `prev_hash` that is not the stream's head chain hash.
    /// Nothing was written.
    #[error(
        "stream {stream}: prev_hash for offset {offset} is {}, but the chain head is {}; \
         nothing was written",
        fmt_hash(expected),
        fmt_hash(actual)
    )]
    PrevHashMismatch {
        /// The stream appended to.
        stream: StreamId,
        /// The offset the batch would have started at.
        offset: Offset,
        /// The `prev_hash` the caller passed.
        expected: Option<ChainHash>,
        /// The stream's real head chain hash.
        actual: Option<ChainHash>,
    },
    /// An event is larger than [`crate::MAX_PAYLOAD_LEN`]. Nothing was written.
    #[error(
        "stream {stream}: event for offset {offset} is {len} bytes, over the limit of {max}; \
         nothing was written"
    )]
    PayloadTooLarge {
        /// The stream appended to.
        stream: StreamId,
        /// The offset the event would have had.
        offset: Offset,
        /// The event's length in bytes.
        len: u64,
        /// The largest event allowed.
        max: u64,
    },
    /// The batch would move the stream's next offset past `u64::MAX`. Nothing was written.
    #[error(
        "stream {stream}: a batch of {count} events at offset {offset} overflows the offset space"
    )]
    OffsetOverflow {
        /// The stream appended to.
        stream: StreamId,
        /// The offset the batch would have started at.
        offset: Offset,
        /// Number of events in the batch.
        count: u64,
    },
    /// A stored record does not decode: its bytes changed, or it was cut short.
    #[error("stream {stream}: corrupt record at offset {offset} ({location}): {source}")]
    CorruptRecord {
        /// The stream read.
        stream: StreamId,
        /// The offset the record should hold.
        offset: Offset,
        /// Where the record's bytes are.
        location: Location,
        /// What is wrong with the bytes.
        source: RecordError,
    },
    /// A record decodes but sits at the wrong offset: records were dropped, reordered or
    /// inserted.
    #[error(
        "stream {stream}: record at {location} holds offset {found}, expected offset {offset}"
    )]
    OffsetMismatch {
        /// The stream read.
        stream: StreamId,
        /// The offset expected at this position.
        offset: Offset,
        /// The offset the record claims.
        found: Offset,
        /// Where the record's bytes are.
        location: Location,
    },
    /// A record's link to its predecessor is broken: it decodes, but its `prev_hash` is not
    /// the chain hash of the record before it, or its own hash is not the one recorded for it.
    #[error(
        "stream {stream}: hash chain broken at offset {offset} ({location}): \
         expected {}, found {}",
        fmt_hash(expected),
        fmt_hash(actual)
    )]
    ChainVerificationFailed {
        /// The stream read.
        stream: StreamId,
        /// The offset whose link fails.
        offset: Offset,
        /// Where the record's bytes are.
        location: Location,
        /// The hash the chain requires.
        expected: Option<ChainHash>,
        /// The hash found.
        actual: Option<ChainHash>,
    },
    /// A segment's records end before (or run past) the offset range its stream's manifest
    /// gives it: records are missing from the segment file.
    #[error(
        "stream {stream}: records missing at offset {offset} ({location}): \
         the segment ends before the offsets its manifest lists"
    )]
    MissingRecords {
        /// The stream read.
        stream: StreamId,
        /// The first offset that should be there and is not.
        offset: Offset,
        /// Where the segment's records end.
        location: Location,
    },
    /// Another handle (in this or another process) holds the store's lock file.
    #[error("store is locked by another handle: {}", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A [`crate::PayloadTransform`] could not transform the batch's events: nothing was
    /// written by this call where the whole batch is transformed first (the default of
    /// [`crate::StoreBackend::append_transformed`]).
    #[error("stream {stream}: {source}")]
    Transform {
        /// The stream appended to.
        stream: StreamId,
        /// What the transform said.
        source: crate::TransformError,
    },
    /// A write or fsync failed earlier: the on-disk state is unknown, so every further write
    /// is refused until the store is reopened (and recovered). Reads still work.
    #[error("store is poisoned by an earlier failure ({context}); reopen it to recover")]
    Poisoned {
        /// What failed first.
        context: String,
    },
    /// `open` found files of this stream it cannot reconcile without guessing (for example a
    /// manifest that lists a segment file that is missing); nothing was changed. The store
    /// opens without the stream, and every call on it returns this error.
    #[error("stream {stream}: cannot recover {}: {reason}", path.display())]
    Unrecoverable {
        /// The stream whose files disagree.
        stream: StreamId,
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A segment file of another format version (written by another version of Kimberlite):
    /// this build cannot read it, so the store is not opened; nothing was changed.
    #[error(
        "stream {stream}: {} is in segment format version {found}, and this build reads \
         version {supported}: the store was written by another version of Kimberlite \
         (nothing was changed)",
        path.display()
    )]
    UnsupportedFormat {
        /// The stream the file belongs to.
        stream: StreamId,
        /// The segment file.
        path: PathBuf,
        /// The version the file holds.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A paused verification ([`crate::VerifyResume`]) was handed to another stream or
    /// another storage handle than the one that paused it: its position means nothing there.
    /// Nothing was read.
    #[error("stream {stream}: this verification was paused on {paused_on}, not here")]
    ForeignResume {
        /// The stream the call named.
        stream: StreamId,
        /// Which stream and handle paused it, in words.
        paused_on: String,
    },
    /// A read of an offset that retention dropped (`pruned.json`): the stream now starts at
    /// `first_offset`. Not damage; nothing was read.
    #[error(
        "stream {stream}: offset {offset} was pruned: the stream holds events from offset \
         {first_offset} on (pruned before offset {first_offset})"
    )]
    Pruned {
        /// The stream read.
        stream: StreamId,
        /// The offset asked for.
        offset: Offset,
        /// The first offset the stream still holds.
        first_offset: Offset,
    },
    /// A prune that cannot be made as asked (an unknown or damaged stream, a cut that is not
    /// a kept segment boundary, a backend without segment files). Nothing was written.
    #[error("stream {stream}: cannot prune: {reason} (nothing was written)")]
    PruneRefused {
        /// The stream named.
        stream: StreamId,
        /// Why, in words.
        reason: String,
    },
    /// A link or an entry of the wrong type inside the store (a fifo, a socket, a device, a
    /// directory where a file belongs): damage, refused, never followed or opened.
    #[error("{0}")]
    UnexpectedEntry(crate::disk::UnexpectedEntry),
    /// An operating-system I/O call failed.
    #[error("I/O error {context}: {source}")]
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn fmt_hash(hash: &Option<ChainHash>) -> String {
    hash.map_or_else(|| "none (start of stream)".to_owned(), |h| h.to_string())
}

impl StorageError {
    /// True for errors that mean stored data is damaged or was tampered with (as opposed to a
    /// caller mistake or an I/O failure).
    #[must_use]
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            StorageError::CorruptRecord { .. }
                | StorageError::OffsetMismatch { .. }
                | StorageError::ChainVerificationFailed { .. }
                | StorageError::MissingRecords { .. }
                | StorageError::Unrecoverable { .. }
                | StorageError::UnexpectedEntry(_)
        )
    }
}
