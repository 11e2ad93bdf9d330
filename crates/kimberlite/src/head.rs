//! A stream's head ([`StreamHead`]), what an append expects of it ([`ExpectedOffset`]) and
//! what an append returns ([`AppendResult`]) and the largest event it takes
//! ([`MAX_EVENT_BYTES`]): plain values shared by the store, its errors and its write path.

use std::fmt;

use kimberlite_crypto::ChainHash;
use kimberlite_types::Offset;

/// Largest event accepted by [`Kimberlite::append`](crate::Kimberlite::append), in bytes.
pub const MAX_EVENT_BYTES: usize = kimberlite_storage::MAX_PAYLOAD_LEN;

/// A stream's head: where the next event goes and the chain hash of the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamHead {
    /// Offset the next appended event gets (= number of events in the stream).
    pub next_offset: Offset,
    /// Chain hash of the last event; `None` while the stream is empty.
    pub hash: Option<ChainHash>,
}

/// What an append expects the stream's next offset to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedOffset {
    /// Append wherever the stream ends.
    Any,
    /// The stream must be empty.
    NoStream,
    /// The stream's next offset must be exactly this one.
    Exact(Offset),
}

impl ExpectedOffset {
    /// Whether a stream whose next offset is `next_offset` meets the expectation.
    pub(crate) fn allows(self, next_offset: Offset) -> bool {
        match self {
            ExpectedOffset::Any => true,
            ExpectedOffset::NoStream => next_offset == Offset::ZERO,
            ExpectedOffset::Exact(expected) => next_offset == expected,
        }
    }
}

impl fmt::Display for ExpectedOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedOffset::Any => f.write_str("any offset"),
            ExpectedOffset::NoStream => f.write_str("an empty stream"),
            ExpectedOffset::Exact(offset) => write!(f, "next offset {offset}"),
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the batch's first event.
    pub first_offset: Offset,
    /// The stream's next offset after the batch (`first_offset` + batch length).
    pub next_offset: Offset,
    /// Chain hash of the batch's last event: it commits to the whole stream so far.
    pub head: ChainHash,
}
