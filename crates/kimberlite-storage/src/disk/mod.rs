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
pub(crate) mod fs;
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

use kimberlite_types::CompressionKind;

pub use crate::backend::{RecoveryAction, RecoveryReport, SegmentSync, StreamStats};
pub use batch::{aligned_write_len, WRITE_CHUNK_BYTES};
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
