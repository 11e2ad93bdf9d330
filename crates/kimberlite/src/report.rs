//! What a verification reports ([`VerifyReport`]: the streams found intact and one
//! [`Problem`] per damaged stream) and what `kimberlite inspect` shows per stream
//! ([`StreamStats`]). Plain data: the walk that fills them is in `verify.rs`.

use std::path::PathBuf;

use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

use kimberlite_storage::StoreBackend;

/// What verification checked in one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    /// The stream.
    pub stream: StreamId,
    /// Its name; `None` for the system catalogue and for unnamed streams.
    pub name: Option<String>,
    /// Data records checked.
    pub records_checked: u64,
    /// Restart records checked.
    pub restart_records_checked: u64,
    /// Segments walked.
    pub segments_checked: usize,
    /// Stored bytes walked.
    pub bytes_checked: u64,
    /// Chain hash of the last record checked: commits to the whole stream.
    pub head: Option<ChainHash>,
    /// The stream's next offset as verified.
    pub next_offset: Offset,
}

/// The first thing wrong found in one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The damaged stream.
    pub stream: StreamId,
    /// Its name, when it has one.
    pub name: Option<String>,
    /// The first offset that fails.
    pub offset: Offset,
    /// Segment number, when known.
    pub segment: Option<u32>,
    /// Segment file, when the backend has files.
    pub file: Option<PathBuf>,
    /// Byte position of the failing record in its segment, when known.
    pub position: Option<u64>,
    /// What is wrong, in a few words (the record's own fault, without the location).
    pub reason: String,
    /// The full error message, location included.
    pub message: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Streams verified intact.
    pub streams: Vec<StreamReport>,
    /// Streams found damaged, one problem each (the first in the stream), in stream order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// The first problem found, if any.
    #[must_use]
    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }

    /// Data records checked, over all intact streams.
    #[must_use]
    pub fn records_checked(&self) -> u64 {
        self.streams.iter().map(|s| s.records_checked).sum()
    }

    /// Restart records checked, over all intact streams.
    #[must_use]
    pub fn restart_records_checked(&self) -> u64 {
        self.streams.iter().map(|s| s.restart_records_checked).sum()
    }

    /// Segments walked, over all intact streams.
    #[must_use]
    pub fn segments_checked(&self) -> usize {
        self.streams.iter().map(|s| s.segments_checked).sum()
    }

    /// Stored bytes walked, over all intact streams.
    #[must_use]
    pub fn bytes_checked(&self) -> u64 {
        self.streams.iter().map(|s| s.bytes_checked).sum()
    }
}

/// A stream's head and storage footprint, as shown by `kimberlite inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// The stream.
    pub stream: StreamId,
    /// Its name; `None` for the system catalogue and unnamed streams.
    pub name: Option<String>,
    /// Events in the stream (its next offset).
    pub events: u64,
    /// Chain hash of the last event.
    pub head: Option<ChainHash>,
    /// Open found the stream's records damaged or its files unreadable: `events` and `head`
    /// are not the stream's (see [`StreamInfo::damaged`](crate::StreamInfo::damaged)).
    pub damaged: bool,
    /// What the storage layer reports.
    pub storage: StorageStats,
}

/// What the storage layer can tell about one stream's footprint. Fields a backend does not
/// track are `None` (the in-memory backend has no files, no compression, no restart records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Segments, the active one included.
    pub segments: usize,
    /// Bytes stored (frames as written, compressed where compressed, restart records included).
    pub stored_bytes: Option<u64>,
    /// Bytes the data records would take uncompressed.
    pub logical_bytes: Option<u64>,
    /// Restart records stored.
    pub restart_records: Option<u64>,
    /// Data records stored compressed.
    pub compressed_records: Option<u64>,
}

impl StorageStats {
    /// What `backend` tells about `stream`.
    pub(crate) fn of(backend: &dyn StoreBackend, stream: StreamId) -> Self {
        match backend.stream_stats(stream) {
            Some(stats) => StorageStats {
                segments: stats.segment_count,
                stored_bytes: Some(stats.stored_bytes),
                logical_bytes: Some(stats.logical_bytes),
                restart_records: Some(stats.restart_record_count),
                compressed_records: Some(stats.compressed_record_count),
            },
            None => StorageStats {
                segments: backend.segment_count(stream),
                ..StorageStats::default()
            },
        }
    }
}
