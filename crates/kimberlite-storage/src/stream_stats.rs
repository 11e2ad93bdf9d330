//! [`StreamStats`]: what a backend can tell about one stream's footprint.

use kimberlite_types::Offset;

/// Sizes and counts of one stream ([`StoreBackend::stream_stats`](crate::StoreBackend::stream_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// The stream's next offset (its number of events).
    pub next_offset: Offset,
    /// Segments, the active one included.
    pub segment_count: usize,
    /// Bytes of segment files (headers, frames as stored, restart records).
    pub stored_bytes: u64,
    /// Logical bytes: data records' frames as if uncompressed (what rotation counts).
    pub logical_bytes: u64,
    /// Restart records.
    pub restart_record_count: u64,
    /// Data records stored compressed.
    pub compressed_record_count: u64,
}
