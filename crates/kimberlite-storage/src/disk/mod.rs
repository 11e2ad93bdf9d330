//! [`Storage`]: the on-disk backend.
//!
//! # Directory layout
//!
//! ```text
//! <dir>/
//!   LOCK                              advisory lock: one open Storage per directory
//!   streams/
//!     00000000000000000042/           one directory per stream, id as 20 decimal digits
//!       manifest.json                 segment list, written atomically (`manifest`)
//!       00000000.seg                  segment 0: header + record frames (`segment`)
//!       00000000.idx                  its sparse index (`index`)
//!       00000001.seg                  …
//! ```
//!
//! Checkpoint records (`checkpoint`) live inside segments. `docs/FORMAT.md` ("On-disk
//! layout") repeats every layout; `docs/ARCHITECTURE.md` ("Recovery") the recovery table.
//!
//! # Semantics
//!
//! Exactly `MemoryStorage`'s, by construction: the same [`crate::backend::check_append`]
//! before anything is written, the same [`crate::segments::SegmentTable`] rotation rule (on
//! logical sizes, so compression, checkpoints and headers never move a boundary), the same
//! [`crate::verify`] decode-and-link on every read, the same
//! [`crate::backend::assert_offset_advanced`] after each append.
//!
//! # Durability
//!
//! A batch, checkpoints included, is encoded into reused memory and written in writes of
//! 64 KiB (`batch`), into blocks allocated ahead once a segment is large (`allocate`). With
//! `fsync = true` the segment file is `fdatasync`ed before `append_batch` returns; a batch that creates a stream or rotates a segment also makes the new segment
//! file, its directory entry and the manifest durable first. With `fsync = false` the batch is
//! handed to the OS and becomes durable at the next synced append or
//! [`StoreBackend::flush`](crate::StoreBackend::flush).
//!
//! After any failed write or sync the store is *poisoned* (fail-stop): every later append or
//! flush returns [`crate::StorageError::Poisoned`] until it is reopened and recovered, because
//! after a failed fsync neither the file's content nor a retried fsync can be trusted.

mod allocate;
mod append;
mod batch;
mod checkpoint;
mod durable;
mod fs;
mod index;
mod le;
mod manifest;
mod meta;
mod quarantine;
mod recovery;
mod resume;
mod scan;
mod segment;
mod storage;
mod stream;
mod verification;
mod walk;

use std::path::PathBuf;

use kimberlite_types::{CompressionKind, Offset, StreamId};

pub use batch::{aligned_write_len, WRITE_CHUNK_BYTES};
pub use durable::SegmentSync;
pub use fs::{EntryKind, FileHandle, FileSystem, OsFile, OsFileSystem, OsLock};
pub use quarantine::{torn_file_name, TORN_DIR};
pub use storage::{Storage, STREAMS_DIR};

/// Default `max_segment_size`: 256 MiB, the same as `MemoryStorage`'s.
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = crate::memory::DEFAULT_MAX_SEGMENT_SIZE;
/// Default `checkpoint_interval`: a checkpoint every 64 data records. A verified read starting
/// inside a segment re-checks the records between the checkpoint before it and its first
/// offset (at most 63 here); a checkpoint costs a frame of about 80 bytes and one index entry.
/// (256 was the first default: a 1-event read at a random offset then re-hashed 128 records
/// on average; `docs/PERFORMANCE.md`.)
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 64;
/// Default `index_interval`: a sparse index entry every 64 data records.
pub const DEFAULT_INDEX_INTERVAL: u64 = 64;

/// How a [`Storage`] lays out and writes its files. Plain data; see each field's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageConfig {
    /// Logical bytes after which a stream's active segment rotates (the rule of
    /// [`crate::segments`]). Default: [`DEFAULT_MAX_SEGMENT_SIZE`] (256 MiB).
    pub max_segment_size: u64,
    /// Data records between checkpoint records; 0 writes none, so that verified reads start
    /// at the stream's first record. Default: [`DEFAULT_CHECKPOINT_INTERVAL`] (64).
    pub checkpoint_interval: u64,
    /// Codec for data payloads, used per record only when it makes the record smaller (and
    /// tried on fewer records where it keeps failing: `batch_job::CodecChoice`).
    /// Default: [`CompressionKind::None`].
    pub compression: CompressionKind,
    /// Data records between sparse index entries (checkpoints are always indexed); 0 indexes
    /// checkpoints only. Default: [`DEFAULT_INDEX_INTERVAL`] (64).
    pub index_interval: u64,
    /// Threads that verify a read (`read_from`) or a whole stream (`verify_stream`): each
    /// frame's CRC check, decode and chain-hash recomputation are independent of the other
    /// frames (a frame carries its predecessor's hash), so a run of at least
    /// 2 × [`crate::frames::MIN_FRAMES_PER_THREAD`] frames is split across up to this many
    /// threads (the calling one and helpers the store starts at its first long read,
    /// [`crate::verify_pool::VerifyPool`]), then linked in order on the calling thread.
    /// Results and errors do not depend on it, only speed does. The helpers serve one read
    /// at a time: a read that runs beside another (`read_from`) while they are
    /// busy verifies on its own thread. `1` (or `0`) verifies on the calling thread only, for
    /// callers who want no extra threads. Default:
    /// [`crate::frames::default_verify_threads`], the machine's available parallelism capped
    /// at [`crate::frames::MAX_VERIFY_THREADS`] (4).
    pub verify_threads: usize,
    /// Whether a batch of 128 events or more is hashed and encoded on a helper thread too,
    /// beside the appending thread, which links the chunks to the chain and writes them
    /// ([`crate::batch_job::BatchWorker`]). Frames, writes and results do not depend on it,
    /// only speed does. Default: true when the machine has more than one core.
    pub hash_ahead: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            compression: CompressionKind::None,
            index_interval: DEFAULT_INDEX_INTERVAL,
            verify_threads: crate::frames::default_verify_threads(),
            hash_ahead: crate::frames::default_verify_threads() > 1,
        }
    }
}

/// Sizes and counts of one stream ([`StoreBackend::stream_stats`](crate::StoreBackend::stream_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// The stream's next offset (its number of events).
    pub next_offset: Offset,
    /// Segments, the active one included.
    pub segment_count: usize,
    /// Bytes of segment files (headers, frames as stored, checkpoints).
    pub stored_bytes: u64,
    /// Logical bytes: data records' frames as if uncompressed (what rotation counts).
    pub logical_bytes: u64,
    /// Checkpoint records.
    pub checkpoint_count: u64,
    /// Data records stored compressed.
    pub compressed_record_count: u64,
}

/// What [`Storage::open`] found and did; empty when the store was clean.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Each repair or finding, in the order met.
    pub actions: Vec<RecoveryAction>,
    /// Record frames open decoded while scanning segments (active segments, rebuilt indexes).
    /// An active segment whose index was flushed is scanned only past what the index covers,
    /// so a store closed after [`StoreBackend::flush`](crate::StoreBackend::flush) opens
    /// with 0.
    pub records_scanned: u64,
}

impl RecoveryReport {
    /// True when open found nothing to repair or report.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.actions.is_empty()
    }

    /// Torn tails truncated.
    pub fn truncations(&self) -> impl Iterator<Item = &RecoveryAction> {
        self.actions
            .iter()
            .filter(|action| matches!(action, RecoveryAction::TornTailTruncated { .. }))
    }
}

/// One thing recovery did or found (rows of the decision table in `recovery`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryAction {
    /// A partial or unchecksummed last record (an unfinished write) was cut off.
    TornTailTruncated {
        /// The stream.
        stream: StreamId,
        /// The segment file.
        file: PathBuf,
        /// File length before.
        from_len: u64,
        /// File length after: the end of the last whole record.
        to_len: u64,
        /// Why the tail did not decode.
        reason: String,
        /// Where the cut bytes were kept, as they were (`torn/` in the stream's directory).
        kept_in: PathBuf,
    },
    /// A segment index was missing or stale and was rebuilt from its segment.
    IndexRebuilt {
        /// The stream.
        stream: StreamId,
        /// The index file written.
        file: PathBuf,
        /// Why the old one was unusable.
        reason: String,
    },
    /// The manifest was missing, unreadable or behind the files and was rewritten from them.
    ManifestRepaired {
        /// The stream.
        stream: StreamId,
        /// What was wrong.
        reason: String,
    },
    /// An active segment whose header was never completely written (it held no record) was
    /// rewritten.
    SegmentHeaderRewritten {
        /// The stream.
        stream: StreamId,
        /// The segment file.
        file: PathBuf,
    },
    /// The active segment had reached `max_segment_size` but the rotation after the batch that
    /// took it there never happened (a crash or failure): open completed it.
    RotationCompleted {
        /// The stream.
        stream: StreamId,
        /// The new active segment's number.
        segment: u32,
    },
    /// A leftover temp file of an interrupted atomic write was removed.
    TempFileRemoved {
        /// The file removed.
        file: PathBuf,
    },
    /// Corruption that recovery must not repair. Reads that reach it fail with this error;
    /// if it is in the active segment, appends to the stream are refused too.
    CorruptionFound {
        /// The stream.
        stream: StreamId,
        /// The error reads will report.
        error: String,
    },
}

impl std::fmt::Display for RecoveryAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryAction::TornTailTruncated {
                stream,
                file,
                from_len,
                to_len,
                reason,
                kept_in,
            } => write!(
                f,
                "stream {stream}: torn tail of {} cut from {from_len} to {to_len} bytes \
                 ({reason}); the cut bytes are kept in {}",
                file.display(),
                kept_in.display()
            ),
            RecoveryAction::IndexRebuilt {
                stream,
                file,
                reason,
            } => write!(
                f,
                "stream {stream}: index {} rebuilt ({reason})",
                file.display()
            ),
            RecoveryAction::ManifestRepaired { stream, reason } => {
                write!(
                    f,
                    "stream {stream}: manifest rebuilt from the segment files ({reason})"
                )
            }
            RecoveryAction::SegmentHeaderRewritten { stream, file } => write!(
                f,
                "stream {stream}: unfinished header of empty segment {} rewritten",
                file.display()
            ),
            RecoveryAction::RotationCompleted { stream, segment } => {
                write!(
                    f,
                    "stream {stream}: interrupted rotation completed (segment {segment} started)"
                )
            }
            RecoveryAction::TempFileRemoved { file } => {
                write!(f, "leftover temp file {} removed", file.display())
            }
            RecoveryAction::CorruptionFound { stream, error } => {
                write!(f, "stream {stream}: corruption left in place: {error}")
            }
        }
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.actions.is_empty() {
            return f.write_str("clean");
        }
        for (i, action) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{action}")?;
        }
        Ok(())
    }
}
