//! Restart records: verified starting points inside a stream.
//!
//! A restart record is an ordinary record frame (`crate::record`) with kind
//! [`RecordKind::Restart`], written *before* the data record whose offset it carries:
//!
//! - `offset` = the offset of the next data record (it consumes no offset);
//! - `prev_hash` = the chain hash of the data record before it (the chain head there);
//! - compression = none; payload = the 16 bytes below.
//!
//! It is not a link of the chain: data records' `prev_hash` skip it, so writing restart records
//! (or not) never changes any data record's chain hash. A verified read of offset `k` starts at
//! the nearest restart record at or before `k`, resumes a `ChainCursor` from its `(offset,
//! prev_hash)` and checks every link from there to `k` and past the last record it returns.
//!
//! # When one is written
//!
//! With `restart_interval = N > 0`, before data record `k > 0` when `k % N == 0` or `k` is
//! the first offset of its segment (so a read never has to walk back into an earlier segment);
//! never twice at one offset. With `N = 0`, never: reads then verify from the stream's first
//! record.
//!
//! # Payload layout (version 1, little-endian)
//!
//! ```text
//! offset  size  field
//!      0     4  version             u32 = 1
//!      4     4  segment_num         u32  segment the restart record was written in
//!      8     8  segment_records     u64  data records before it in that segment
//! ```
//!
//! The payload is informational (it helps `inspect` and humans); the CRC of the frame covers
//! it, and reads rely only on `offset` and `prev_hash`.

use bytes::Bytes;

/// Restart record payload format version.
pub const RESTART_VERSION: u32 = 1;
/// Length of a restart record payload.
pub const RESTART_PAYLOAD_LEN: usize = 16;

/// Whether a restart record goes before data record `offset` of a segment starting at
/// `segment_first_offset`, given the last restart record already written in the segment.
#[must_use]
pub fn restart_due(
    interval: u64,
    offset: u64,
    segment_first_offset: u64,
    last_restart: Option<u64>,
) -> bool {
    interval > 0
        && offset > 0
        && (offset.is_multiple_of(interval) || offset == segment_first_offset)
        && last_restart != Some(offset)
}

/// The payload of a restart record written in segment `segment_num` after `segment_records`
/// data records of it.
#[must_use]
pub fn restart_payload(segment_num: u32, segment_records: u64) -> Bytes {
    let mut payload = Vec::with_capacity(RESTART_PAYLOAD_LEN);
    payload.extend_from_slice(&RESTART_VERSION.to_le_bytes());
    payload.extend_from_slice(&segment_num.to_le_bytes());
    payload.extend_from_slice(&segment_records.to_le_bytes());
    Bytes::from(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_on_interval_and_segment_start_once() {
        assert!(!restart_due(4, 0, 0, None));
        assert!(!restart_due(4, 3, 0, None));
        assert!(restart_due(4, 4, 0, None));
        assert!(!restart_due(4, 4, 0, Some(4)));
        assert!(restart_due(4, 5, 5, None));
        assert!(!restart_due(0, 8, 8, None));
    }

    #[test]
    fn payload_is_version_segment_and_records() {
        let payload = restart_payload(1, 3);
        assert_eq!(payload.len(), RESTART_PAYLOAD_LEN);
        assert_eq!(&payload[..4], &RESTART_VERSION.to_le_bytes());
        assert_eq!(&payload[4..8], &1u32.to_le_bytes());
        assert_eq!(&payload[8..], &3u64.to_le_bytes());
    }
}
