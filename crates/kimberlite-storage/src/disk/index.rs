//! The sparse offset index of one segment, in memory and on disk.
//!
//! The index maps offsets to byte positions in the segment: one entry for **every restart record
//! record** (where verified reads start) and one for every `index_interval`-th data record of
//! the segment (the first included), which lets tools find a record without a scan. It also
//! carries the segment's summary (offset range, logical size, counts), so that opening a store
//! does not scan completed segments.
//!
//! The index is derived data: it is never trusted over the segment. It is rewritten atomically
//! (temp file, fsync, rename) on `flush_indexes` and at rotation, and rebuilt from the segment
//! when missing or *stale*: its recorded segment length differs from the file's, or its own
//! checksum, magic, version, stream or segment number do not match.
//!
//! The active segment's index may also carry a *resume point* (flag bit 0): the chain hash of
//! the last data record it covers, written only when every byte it covers had been fsynced
//! and chained without a break. Open then checks the first and last covered frames and scans
//! only the bytes past `segment_len_bytes` (`resume`); without one it scans the whole segment.
//!
//! # Layout of `{segment_num:08}.idx` (version 2, little-endian)
//!
//! ```text
//! offset  size  field
//!      0     8  magic               b"KMBLIDX\0"
//!      8     4  version             u32 = 2
//!     12     4  segment_num         u32
//!     16     8  stream_id           u64
//!     24     8  segment_len_bytes   u64  length of the segment prefix this index describes
//!     32     8  first_offset        u64
//!     40     8  next_offset         u64  one past the segment's last data record
//!     48     8  logical_size_bytes  u64  see `crate::segments`
//!     56     8  last_data_position  u64  position of the last data record; u64::MAX if none
//!     64     8  restart_record_count    u64
//!     72     8  compressed_count    u64  data records stored compressed
//!     80     4  entry_count         u32
//!     84     4  flags               u32  bit 0: `head` is a resume point; other bits 0
//!     88    32  head                     chain hash of the record at last_data_position;
//!                                        32 zero bytes when flag bit 0 is clear
//!    120  24*n  entries             { offset u64, position u64, kind u8 (0 data, 1
//!                                     restart record), 7 zero bytes }, ascending by position
//! 120+24n    4  crc32c              u32  CRC32C of every byte before it
//! ```
//!
//! Version 1 files (no `head`, `flags` reserved as 0, entries at byte 88) are still read, as
//! indexes without a resume point.

use kimberlite_crypto::ChainHash;
use kimberlite_types::StreamId;

use super::segment_file::SEGMENT_HEADER_LEN;
use crate::le::{le_u32, le_u64};
use crate::rotation::logical_record_size;

/// First bytes of every index file.
pub const INDEX_MAGIC: [u8; 8] = *b"KMBLIDX\0";
/// Index file format version written.
pub const INDEX_VERSION: u32 = 2;
/// Header length of version 1 files (no `head`).
const HEADER_LEN_V1: usize = 88;
const HEADER_LEN: usize = 120;
/// Flag bit 0: the `head` field is a resume point.
const FLAG_RESUME: u32 = 1;
const ENTRY_LEN: usize = 24;
const CRC_LEN: usize = 4;
const NO_POSITION: u64 = u64::MAX;

/// The file name of segment `segment_num`'s index.
#[must_use]
pub fn index_file_name(segment_num: u32) -> String {
    format!("{segment_num:08}.idx")
}

/// What a segment holds, maintained as records are appended or scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Bytes of the segment covered (header included): where the next record goes.
    pub len_bytes: u64,
    /// Offset of the segment's first data record.
    pub first_offset: u64,
    /// One past the offset of its last data record.
    pub next_offset: u64,
    /// Logical size (uncompressed frames of data records).
    pub logical_size_bytes: u64,
    /// Position of the last data record.
    pub last_data_position: Option<u64>,
    /// Restart records.
    pub restart_record_count: u64,
    /// Data records stored compressed.
    pub compressed_count: u64,
}

/// One located record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The record's offset (a restart record's is the next data offset).
    pub offset: u64,
    /// Byte position of its frame in the segment.
    pub position: u64,
}

/// A segment's index: summary, restart record entries and sparse data entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    /// The segment summary.
    pub summary: SegmentSummary,
    /// Every restart record, ascending.
    pub restart_records: Vec<IndexEntry>,
    /// Every `index_interval`-th data record, ascending.
    pub data: Vec<IndexEntry>,
}

/// An index file as decoded, before its length is compared with the segment's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIndex {
    /// The index (its summary's `len_bytes` is the prefix it describes).
    pub index: SegmentIndex,
    /// The resume point: the chain hash of the last data record covered, present only when
    /// the writer knew every covered byte was fsynced and chained without a break.
    pub head: Option<ChainHash>,
}

/// One record as seen by [`SegmentIndex::push`].
#[derive(Debug, Clone, Copy)]
pub struct SeenRecord {
    /// Restart record or data.
    pub is_restart: bool,
    /// The record's offset.
    pub offset: u64,
    /// Where its frame starts.
    pub position: u64,
    /// Its frame length as stored.
    pub frame_len: u64,
    /// Its uncompressed payload length.
    pub payload_len: usize,
    /// Whether its payload is stored compressed.
    pub compressed: bool,
}

impl SegmentIndex {
    /// The index of an empty segment starting at `first_offset`.
    #[must_use]
    pub fn empty(first_offset: u64) -> Self {
        Self {
            summary: SegmentSummary {
                len_bytes: SEGMENT_HEADER_LEN as u64,
                first_offset,
                next_offset: first_offset,
                logical_size_bytes: 0,
                last_data_position: None,
                restart_record_count: 0,
                compressed_count: 0,
            },
            restart_records: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Accounts for one record appended at the segment's end.
    pub fn push(&mut self, record: SeenRecord, index_interval: u64) {
        debug_assert_eq!(record.position, self.summary.len_bytes);
        let entry = IndexEntry {
            offset: record.offset,
            position: record.position,
        };
        let summary = &mut self.summary;
        if record.is_restart {
            self.restart_records.push(entry);
            summary.restart_record_count += 1;
        } else {
            let nth = record.offset - summary.first_offset;
            if index_interval > 0 && nth.is_multiple_of(index_interval) {
                self.data.push(entry);
            }
            summary.next_offset = record.offset + 1;
            summary.logical_size_bytes += logical_record_size(record.payload_len);
            summary.last_data_position = Some(record.position);
            summary.compressed_count += u64::from(record.compressed);
        }
        summary.len_bytes = record.position + record.frame_len;
    }

    /// The offset of the segment's last restart record.
    #[must_use]
    pub fn last_restart(&self) -> Option<u64> {
        self.restart_records.last().map(|entry| entry.offset)
    }

    /// The last restart record at or before `offset`.
    #[must_use]
    pub fn restart_at_or_before(&self, offset: u64) -> Option<IndexEntry> {
        let count = self
            .restart_records
            .partition_point(|entry| entry.offset <= offset);
        count
            .checked_sub(1)
            .and_then(|last| self.restart_records.get(last))
            .copied()
    }

    /// Encodes the index file for segment `segment_num` of `stream`, with `head` as its
    /// resume point (see the module docs for when a writer may give one).
    #[must_use]
    pub fn encode(&self, stream: StreamId, segment_num: u32, head: Option<ChainHash>) -> Vec<u8> {
        let mut entries: Vec<(IndexEntry, u8)> = self
            .restart_records
            .iter()
            .map(|entry| (*entry, 1u8))
            .chain(self.data.iter().map(|entry| (*entry, 0u8)))
            .collect();
        entries.sort_by_key(|(entry, _)| entry.position);
        let s = &self.summary;
        let mut out = Vec::with_capacity(HEADER_LEN + entries.len() * ENTRY_LEN + CRC_LEN);
        out.extend_from_slice(&INDEX_MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&segment_num.to_le_bytes());
        out.extend_from_slice(&stream.as_u64().to_le_bytes());
        for field in [
            s.len_bytes,
            s.first_offset,
            s.next_offset,
            s.logical_size_bytes,
            s.last_data_position.unwrap_or(NO_POSITION),
            s.restart_record_count,
            s.compressed_count,
        ] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        let flags = if head.is_some() { FLAG_RESUME } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(head.map_or([0u8; 32], |head| *head.as_bytes()).as_slice());
        debug_assert_eq!(out.len(), HEADER_LEN);
        for (entry, kind) in entries.iter().take(count as usize) {
            out.extend_from_slice(&entry.offset.to_le_bytes());
            out.extend_from_slice(&entry.position.to_le_bytes());
            out.push(*kind);
            out.extend_from_slice(&[0u8; 7]);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes an index file and checks it describes segment `segment_num` of `stream`, whose
    /// file is `segment_len_bytes` long. The error says why it is unusable (corrupt or stale).
    pub fn decode(
        bytes: &[u8],
        stream: StreamId,
        segment_num: u32,
        segment_len_bytes: u64,
    ) -> Result<SegmentIndex, String> {
        let stored = SegmentIndex::decode_stored(bytes, stream, segment_num)?;
        let len_bytes = stored.index.summary.len_bytes;
        if len_bytes != segment_len_bytes {
            return Err(format!(
                "stale index: describes {len_bytes} bytes, segment has {segment_len_bytes}"
            ));
        }
        Ok(stored.index)
    }

    /// Decodes an index file and checks it describes segment `segment_num` of `stream`,
    /// whatever the segment's length now is (the active segment may have grown since).
    pub fn decode_stored(
        bytes: &[u8],
        stream: StreamId,
        segment_num: u32,
    ) -> Result<StoredIndex, String> {
        if bytes.len() < HEADER_LEN_V1 + CRC_LEN {
            return Err(format!("index file truncated ({} bytes)", bytes.len()));
        }
        let crc_at = bytes.len() - CRC_LEN;
        let stored = le_u32(bytes, crc_at);
        let computed = crc32c::crc32c(bytes.get(..crc_at).unwrap_or_default());
        if bytes.get(..INDEX_MAGIC.len()) != Some(&INDEX_MAGIC[..]) {
            return Err("not an index file (bad magic)".to_owned());
        }
        if stored != computed {
            return Err("index checksum mismatch".to_owned());
        }
        let header_len = match le_u32(bytes, 8) {
            1 => HEADER_LEN_V1,
            INDEX_VERSION => HEADER_LEN,
            version => return Err(format!("unsupported index version {version}")),
        };
        if le_u32(bytes, 12) != segment_num || le_u64(bytes, 16) != stream.as_u64() {
            return Err("index names another stream or segment".to_owned());
        }
        let count = le_u32(bytes, 80) as usize;
        if bytes.len() != header_len + count.saturating_mul(ENTRY_LEN) + CRC_LEN {
            return Err("index length does not match its entry count".to_owned());
        }
        let head = match (header_len, le_u32(bytes, 84)) {
            (_, 0) => None,
            (HEADER_LEN, FLAG_RESUME) => bytes
                .get(88..HEADER_LEN)
                .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
                .map(ChainHash::from_bytes),
            (_, flags) => return Err(format!("unknown index flags {flags:#x}")),
        };
        let stray_head = header_len == HEADER_LEN
            && head.is_none()
            && bytes
                .get(88..HEADER_LEN)
                .is_some_and(|raw| raw.iter().any(|&b| b != 0));
        if stray_head {
            return Err("index head set without its flag".to_owned());
        }
        let field = |i: usize| le_u64(bytes, 24 + 8 * i);
        let summary = SegmentSummary {
            len_bytes: field(0),
            first_offset: field(1),
            next_offset: field(2),
            logical_size_bytes: field(3),
            last_data_position: Some(field(4)).filter(|&p| p != NO_POSITION),
            restart_record_count: field(5),
            compressed_count: field(6),
        };
        let mut index = SegmentIndex {
            summary,
            restart_records: Vec::new(),
            data: Vec::new(),
        };
        let mut last_position = 0u64;
        for i in 0..count {
            let at = header_len + i * ENTRY_LEN;
            let entry = IndexEntry {
                offset: le_u64(bytes, at),
                position: le_u64(bytes, at + 8),
            };
            let in_range = entry.position >= SEGMENT_HEADER_LEN as u64
                && entry.position < summary.len_bytes
                && entry.position >= last_position
                && entry.offset >= summary.first_offset
                && entry.offset <= summary.next_offset;
            if !in_range {
                return Err(format!("index entry {i} out of range"));
            }
            last_position = entry.position;
            match bytes.get(at + 16) {
                Some(0) => index.data.push(entry),
                Some(1) => index.restart_records.push(entry),
                _ => return Err(format!("index entry {i} has an unknown kind")),
            }
        }
        if index.restart_records.len() as u64 != summary.restart_record_count
            || summary.next_offset < summary.first_offset
        {
            return Err("index summary is inconsistent".to_owned());
        }
        Ok(StoredIndex { index, head })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentIndex {
        let mut index = SegmentIndex::empty(10);
        let mut position = SEGMENT_HEADER_LEN as u64;
        for (offset, is_restart) in [
            (10, true),
            (10, false),
            (11, false),
            (12, true),
            (12, false),
        ] {
            index.push(
                SeenRecord {
                    is_restart,
                    offset,
                    position,
                    frame_len: 60,
                    payload_len: 4,
                    compressed: false,
                },
                2,
            );
            position += 60;
        }
        index
    }

    #[test]
    fn round_trips_and_finds_restart_records() {
        let index = sample();
        assert_eq!(index.summary.next_offset, 13);
        assert_eq!(index.data.len(), 2);
        assert_eq!(index.restart_at_or_before(11).map(|e| e.offset), Some(10));
        assert_eq!(index.restart_at_or_before(12).map(|e| e.offset), Some(12));
        assert_eq!(index.restart_at_or_before(9), None);
        let stream = StreamId::new(5);
        let bytes = index.encode(stream, 2, None);
        let len = index.summary.len_bytes;
        assert_eq!(SegmentIndex::decode(&bytes, stream, 2, len), Ok(index));
        assert!(SegmentIndex::decode(&bytes, stream, 2, len + 1).is_err());
        assert!(SegmentIndex::decode(&bytes, stream, 3, len).is_err());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(
                SegmentIndex::decode(&bad, stream, 2, len).is_err(),
                "flip {i}"
            );
        }
        assert!(SegmentIndex::decode(&bytes[..bytes.len() - 1], stream, 2, len).is_err());
    }

    /// Re-encodes `bytes` with a fresh CRC (for building files that only a field makes bad).
    fn with_crc(mut bytes: Vec<u8>) -> Vec<u8> {
        let at = bytes.len() - CRC_LEN;
        let crc = crc32c::crc32c(&bytes[..at]);
        bytes[at..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn the_resume_point_round_trips_and_is_checked() {
        let index = sample();
        let stream = StreamId::new(5);
        let head = ChainHash::from_bytes([7; 32]);
        let bytes = index.encode(stream, 2, Some(head));
        let stored = SegmentIndex::decode_stored(&bytes, stream, 2).unwrap();
        assert_eq!(stored.head, Some(head));
        assert_eq!(stored.index, index);
        // The length check is `decode`'s alone: an active segment may have grown since.
        assert!(SegmentIndex::decode_stored(&bytes, stream, 2).is_ok());
        assert!(SegmentIndex::decode(&bytes, stream, 2, index.summary.len_bytes + 9).is_err());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                SegmentIndex::decode_stored(&bad, stream, 2).is_err(),
                "flip {i}"
            );
        }
        // With a valid CRC: an unknown flag, or a head without its flag, is refused.
        let mut unknown = bytes.clone();
        unknown[84] = 3;
        assert!(SegmentIndex::decode_stored(&with_crc(unknown), stream, 2).is_err());
        let mut stray = index.encode(stream, 2, None);
        stray[100] = 1;
        assert!(SegmentIndex::decode_stored(&with_crc(stray), stream, 2).is_err());
    }

    #[test]
    fn version_1_files_read_as_indexes_without_a_resume_point() {
        let index = sample();
        let stream = StreamId::new(5);
        let v2 = index.encode(stream, 2, Some(ChainHash::from_bytes([7; 32])));
        let mut v1 = Vec::new();
        v1.extend_from_slice(&v2[..8]);
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&v2[12..84]);
        v1.extend_from_slice(&0u32.to_le_bytes());
        v1.extend_from_slice(&v2[HEADER_LEN..]);
        let v1 = with_crc(v1);
        let stored = SegmentIndex::decode_stored(&v1, stream, 2).unwrap();
        assert_eq!(stored, StoredIndex { index, head: None });
        let mut flagged = v1.clone();
        flagged[84] = 1;
        assert!(SegmentIndex::decode_stored(&with_crc(flagged), stream, 2).is_err());
        let mut future = v1;
        future[8] = 3;
        assert!(SegmentIndex::decode_stored(&with_crc(future), stream, 2).is_err());
    }
}
