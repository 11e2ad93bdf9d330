//! Kimberlite's storage engine.
//!
//! All data is an immutable, ordered, hash-chained log. This crate holds:
//!
//! - [`Record`]: one stored event and its checksummed byte frame ([`record`]).
//! - [`StorageBackend`]: the interface every backend implements, and [`StoreBackend`], what
//!   the `kimberlite` store needs on top of it ([`backend`]).
//! - [`MemoryStorage`]: the in-memory backend ([`memory`]).
//! - [`Storage`]: the on-disk backend ([`disk`]), generic over a [`FileSystem`].
//! - The pure pieces the backends share: chain verification ([`verify`]), the parallel
//!   decode-and-hash of a run of frames ([`frames`]) and segment rotation bookkeeping
//!   ([`segments`]).
//!
//! Errors are [`StorageError`] (per backend call) and [`RecordError`] (per frame).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod backend;
pub mod batch_job;
pub mod disk;
pub mod error;
pub mod frames;
pub mod job_board;
pub mod memory;
pub mod record;
pub mod segments;
pub mod verify;
pub mod verify_pause;
pub mod verify_pool;

#[cfg(feature = "fuzz-reset")]
pub use backend::ResetStorage;
pub use backend::{StorageBackend, StoreBackend};
pub use disk::{
    EntryKind, FileHandle, FileSystem, OsFileSystem, RecoveryAction, RecoveryReport, SegmentSync,
    Storage, StorageConfig, StreamStats,
};
pub use error::{Location, RecordError, StorageError};
pub use memory::MemoryStorage;
pub use record::{Record, MAX_PAYLOAD_LEN, RECORD_OVERHEAD};
pub use verify::VerifyReport;
pub use verify_pause::{VerifyResume, VerifyStep};
