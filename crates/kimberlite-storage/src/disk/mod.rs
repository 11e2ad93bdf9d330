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
//!       00000000.seg                  segment 0: header + record frames (`segment_file`)
//!       00000000.idx                  its sparse index (`index`)
//!       00000001.seg                  …
//! ```
//!
//! Restart records (`restart`) live inside segments. `docs/FORMAT.md` ("On-disk
//! layout") repeats every layout; `docs/INTERNALS.md` ("Recovery") the recovery table.
//!
//! # Semantics
//!
//! Exactly `MemoryStorage`'s, by construction: the same [`crate::backend::check_append`]
//! before anything is written, the same rotation rule (`SegmentTable`) (on
//! logical sizes, so compression, restart records and headers never move a boundary), the same
//! decode-and-link on every read (`crate::chain`), the same
//! [`crate::backend::assert_offset_advanced`] after each append.
//!
//! # Durability
//!
//! A batch, restart records included, is encoded into reused memory and written in writes of
//! 64 KiB (`batch`), into blocks allocated ahead once a segment is large (`allocate`). With
//! `fsync = true` the segment file is `fdatasync`ed before `append_batch` returns; a batch that
//! creates a stream or rotates a segment also makes the new segment file, its directory entry
//! and the manifest durable first. With `fsync = false` the batch is handed to the OS and
//! becomes durable at the next synced append or
//! [`StoreBackend::flush`](crate::StoreBackend::flush).
//!
//! After any failed write or sync the store is *poisoned* (fail-stop): every later append or
//! flush returns [`crate::StorageError::Poisoned`] until it is reopened and recovered, because
//! after a failed fsync neither the file's content nor a retried fsync can be trusted.

mod allocate;
mod append;
mod batch;
mod config;
mod durable;
pub(crate) mod fs;
mod index;
mod manifest;
mod meta;
mod nofollow;
mod prune;
mod prune_recovery;
mod pruned;
mod quarantine;
mod read_only;
mod recovery;
mod restart;
mod resume;
mod scan;
mod segment_file;
mod storage;
mod stream;
mod stream_dirs;
mod stream_read;
mod verification;
mod walk;

pub use crate::backend::SegmentSync;
pub use crate::recovery_report::{RecoveryAction, RecoveryReport};
pub use crate::stream_stats::StreamStats;
pub use batch::{aligned_write_len, WRITE_CHUNK_BYTES};
pub use config::{
    StorageConfig, DEFAULT_INDEX_INTERVAL, DEFAULT_MAX_SEGMENT_SIZE, DEFAULT_RESTART_INTERVAL,
};
pub use fs::{
    replace_file, EntryKind, FileHandle, FileSystem, OsFile, OsFileSystem, OsLock, UnexpectedEntry,
};
// The derived files' codecs, public so that tests and the simulator can forge them as a
// capable attacker would (valid checksums, wrong contents).
pub use index::{index_file_name, IndexEntry, SegmentIndex, SegmentSummary, StoredIndex};
pub use manifest::{Manifest, ManifestSegment, MANIFEST_FILE};
pub use pruned::{PrunePoint, PRUNED_FILE};
pub use quarantine::{torn_file_name, TORN_DIR};
pub use read_only::{ReadOnlyFile, ReadOnlyFs};
pub use storage::{Storage, STREAMS_DIR};
