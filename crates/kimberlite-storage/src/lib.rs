//! Kimberlite's storage engine.
//!
//! All data is an immutable, ordered, hash-chained log. This crate holds:
//!
//! - [`Record`]: one stored event and its checksummed byte frame.
//! - [`StorageBackend`]: the interface every backend implements, and [`StoreBackend`], what
//!   the `kimberlite` store needs on top of it ([`backend`]).
//! - [`MemoryStorage`]: the in-memory backend.
//! - [`Storage`]: the on-disk backend ([`disk`]), generic over a [`FileSystem`].
//! - What a full verification reports ([`VerifyReport`]) and, when it runs in pieces, where
//!   it paused ([`VerifyResume`], [`VerifyStep`]).
//!
//! Errors are [`StorageError`] (per backend call) and [`RecordError`] (per frame). The byte
//! formats are in `docs/FORMAT.md`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod backend;
mod chain;
#[doc(hidden)]
pub mod crash_point;
pub mod disk;
mod encode;
mod error;
mod le;
mod memory;
mod parallel;
mod record;
mod recovery_report;
mod rotation;
mod stream_stats;
mod transform;
mod verify;

#[cfg(feature = "fuzz-reset")]
pub use backend::ResetStorage;
pub use backend::{StorageBackend, StoreBackend};
pub use disk::{
    EntryKind, FileHandle, FileSystem, OsFileSystem, PrunePoint, ReadOnlyFs, RecoveryAction,
    RecoveryReport, SegmentSync, Storage, StorageConfig, StreamStats, UnexpectedEntry, PRUNED_FILE,
};
pub use error::{Location, RecordError, StorageError};
pub use memory::MemoryStorage;
pub use parallel::{BLOCK_FRAMES as VERIFY_BLOCK_FRAMES, MIN_EVENTS as HASH_AHEAD_MIN_EVENTS};
pub use record::{Record, MAX_PAYLOAD_LEN, RECORD_HEADER_LEN, RECORD_OVERHEAD};
pub use transform::{transform_events, PayloadTransform, TransformError};
pub use verify::{VerifyReport, VerifyResume, VerifyStep};
