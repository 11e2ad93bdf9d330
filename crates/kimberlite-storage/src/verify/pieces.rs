//! Verification in pieces: a full verification may pause after a number of records and
//! resume later where it stopped, so a caller that holds a lock for it (the `kimberlite`
//! store holds its read lock) can let appends in between the pieces instead of making them
//! wait for the whole walk.
//!
//! Preserved: a verification resumed to its end checks what one uninterrupted walk checks:
//! every record from the first, its CRC, offset and link, each record once. The end check
//! (every offset present, the last hash equal to the head held in memory) is made when the
//! last piece reaches the end, against the stream as it is then: records appended between
//! pieces are verified too. Records before the pause are not read again: they cannot change
//! (the log only grows), and the chain hash the next piece links to is the one the walk
//! computed, never one read from disk.
//!
//! Dropped: nothing of the checks. A pause point is a position in one handle's files, so it
//! is refused ([`StorageError::ForeignResume`]) by another stream or another handle (a
//! reopened store included), where it would point into the middle of a record and read as
//! damage.

use std::sync::atomic::{AtomicU64, Ordering};

use kimberlite_types::StreamId;

use super::report::VerifyReport;
use crate::chain::ChainCursor;
use crate::error::StorageError;

/// Numbers handed to storage handles as they are created, never twice in a process.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// A number for a new storage handle, which its pause points carry.
pub(crate) fn new_handle_id() -> u64 {
    NEXT_HANDLE.fetch_add(1, Ordering::Relaxed)
}

/// Where a verification paused ([`VerifyStep::Paused`]): hand it back to the same backend's
/// verification to go on from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyResume {
    pub(crate) handle: u64,
    pub(crate) cursor: ChainCursor,
    /// The segment and byte position of the next frame (on-disk backends).
    pub(crate) segment_index: usize,
    pub(crate) position: u64,
    /// What the pieces so far counted, for the final report.
    pub(crate) restart_records: u64,
    pub(crate) bytes: u64,
}

impl VerifyResume {
    /// The stream being verified.
    #[must_use]
    pub fn stream(&self) -> StreamId {
        self.cursor.stream()
    }

    /// Data records verified so far (offsets `0..records_checked`).
    #[must_use]
    pub fn records_checked(&self) -> u64 {
        self.cursor.next_offset().as_u64()
    }

    /// Refuses a pause point that handle `handle` did not make for `stream`.
    pub(crate) fn check_owner(&self, handle: u64, stream: StreamId) -> Result<(), StorageError> {
        if self.handle == handle && self.stream() == stream {
            return Ok(());
        }
        Err(StorageError::ForeignResume {
            stream,
            paused_on: format!(
                "stream {} of storage handle #{}, at offset {} (this is handle #{handle})",
                self.stream(),
                self.handle,
                self.cursor.next_offset()
            ),
        })
    }
}

/// What one piece of a verification did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyStep {
    /// The walk reached the end of the stream: the whole verification's report.
    Done(VerifyReport),
    /// The walk stopped after the records it was allowed; resume from here.
    Paused(VerifyResume),
}

impl VerifyStep {
    /// The report of a piece given no bound (`max_records = u64::MAX`), which walks to the end.
    pub(crate) fn unbounded_report(self, stream: StreamId) -> Result<VerifyReport, StorageError> {
        match self {
            VerifyStep::Done(report) => Ok(report),
            // Offsets end before `u64::MAX`, so such a piece never pauses; kept as an error
            // rather than a panic.
            VerifyStep::Paused(resume) => Err(StorageError::ForeignResume {
                stream,
                paused_on: format!("an unbounded walk, at offset {}", resume.records_checked()),
            }),
        }
    }
}
