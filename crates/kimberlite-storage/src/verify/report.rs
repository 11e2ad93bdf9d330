//! [`VerifyReport`]: what a full verification of one stream checked.

use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

/// What a full verification of one stream checked (`verify_stream` on each backend).
///
/// A verification that finds a problem returns the [`StorageError`](crate::StorageError) instead; a report means
/// every record from the first was decoded, CRC-checked and linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The stream verified.
    pub stream: StreamId,
    /// Data records checked (equal to `next_offset`).
    pub records_checked: u64,
    /// Restart records checked.
    pub restart_records_checked: u64,
    /// Segments walked.
    pub segments_checked: usize,
    /// Stored bytes walked (frames as stored, compressed where compressed).
    pub bytes_checked: u64,
    /// Chain hash of the last data record, `None` for an empty stream.
    pub head: Option<ChainHash>,
    /// The stream's next offset.
    pub next_offset: Offset,
}
