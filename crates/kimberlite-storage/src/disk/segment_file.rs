//! Segment files: a fixed header, then record frames back to back.
//!
//! # Layout (format version 2, all integers little-endian)
//!
//! ```text
//! offset  size  field
//!      0     8  magic          b"KMBLSEG\0"
//!      8     4  version        u32  = 2
//!     12     4  segment_num    u32  this file's number in its stream (0-based)
//!     16     8  stream_id      u64
//!     24     8  first_offset   u64  offset of the segment's first data record
//!     32     4  reserved       u32  = 0
//!     36     4  header_crc     u32  CRC32C of bytes [0, 36)
//!     40     …  record frames  (see `crate::record`), data and restart records
//! ```
//!
//! File name: `{segment_num:08}.seg` in the stream's directory. A segment is written only by
//! appending whole batches at its end; once the stream rotates past it, it is *completed* and
//! never written again (read through a read-only map). The header lets recovery tell a file
//! that belongs elsewhere (wrong stream or number) from one that merely lost its manifest.
//!
//! [`SegmentBytes`] gives the rest of the engine a byte view of a segment: a zero-copy slice
//! of the map for completed segments, buffered positional reads for the active one.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kimberlite_types::StreamId;

use super::fs::FileHandle;
use crate::le::{le_u32, le_u64};

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"KMBLSEG\0";
/// Segment format version: of the header and of the record frames after it.
///
/// 2: frames of record format 3 (`crate::record::RECORD_FORMAT_VERSION`, the link at the end).
/// A segment of another version is refused at open, with this reason, rather than opened with
/// every record reported corrupt.
pub const SEGMENT_VERSION: u32 = 2;

const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + SEGMENT_MAGIC.len();
const SEGMENT_NUM_AT: usize = VERSION_AT + size_of::<u32>();
const STREAM_AT: usize = SEGMENT_NUM_AT + size_of::<u32>();
const FIRST_OFFSET_AT: usize = STREAM_AT + size_of::<u64>();
const RESERVED_AT: usize = FIRST_OFFSET_AT + size_of::<u64>();
const CRC_AT: usize = RESERVED_AT + size_of::<u32>();
/// Length of the segment header; the first record starts here.
pub const SEGMENT_HEADER_LEN: usize = CRC_AT + size_of::<u32>();

const _: () = assert!(SEGMENT_HEADER_LEN == 40);

/// The decoded header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment number in its stream.
    pub segment_num: u32,
    /// The stream the segment belongs to.
    pub stream: StreamId,
    /// Offset of the segment's first data record.
    pub first_offset: u64,
}

/// Why bytes are not a segment header of this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Not a segment header (what is wrong with it).
    Malformed(String),
    /// A sound header (magic and CRC check) of another segment format version.
    UnsupportedVersion(u32),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Malformed(reason) => f.write_str(reason),
            HeaderError::UnsupportedVersion(version) => write!(
                f,
                "unsupported segment format version {version} (this build reads version \
                 {SEGMENT_VERSION})"
            ),
        }
    }
}

impl SegmentHeader {
    /// Encodes the header (exactly [`SEGMENT_HEADER_LEN`] bytes).
    #[must_use]
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = Vec::with_capacity(SEGMENT_HEADER_LEN);
        out.extend_from_slice(&SEGMENT_MAGIC);
        out.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.segment_num.to_le_bytes());
        out.extend_from_slice(&self.stream.as_u64().to_le_bytes());
        out.extend_from_slice(&self.first_offset.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        header.copy_from_slice(&out);
        header
    }

    /// Decodes a header; the error says what is wrong. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let Some(header) = bytes.get(..SEGMENT_HEADER_LEN) else {
            return Err(HeaderError::Malformed(format!(
                "segment header truncated: {} of {SEGMENT_HEADER_LEN} bytes",
                bytes.len()
            )));
        };
        if header.get(..SEGMENT_MAGIC.len()) != Some(&SEGMENT_MAGIC[..]) {
            return Err(HeaderError::Malformed(
                "not a segment file (bad magic)".to_owned(),
            ));
        }
        let stored_crc = le_u32(header, CRC_AT);
        let computed_crc = crc32c::crc32c(header.get(..CRC_AT).unwrap_or_default());
        if stored_crc != computed_crc {
            return Err(HeaderError::Malformed(format!(
                "segment header checksum mismatch: stored {stored_crc:#010x}, \
                 computed {computed_crc:#010x}"
            )));
        }
        let version = le_u32(header, VERSION_AT);
        if version != SEGMENT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        Ok(SegmentHeader {
            segment_num: le_u32(header, SEGMENT_NUM_AT),
            stream: StreamId::new(le_u64(header, STREAM_AT)),
            first_offset: le_u64(header, FIRST_OFFSET_AT),
        })
    }
}

/// The file name of segment `segment_num`.
#[must_use]
pub fn segment_file_name(segment_num: u32) -> String {
    format!("{segment_num:08}.seg")
}

/// The segment number named by a segment file name, `None` for any other name.
#[must_use]
pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The path of segment `segment_num` in `stream_dir`.
#[must_use]
pub fn segment_path(stream_dir: &Path, segment_num: u32) -> PathBuf {
    stream_dir.join(segment_file_name(segment_num))
}

/// Smallest read of the active segment: records are decoded from a window at least this big,
/// so walking many small records costs one system call per window, not one per record. A
/// window is a new zeroed buffer (returned payloads are slices of it), so a bigger one costs
/// its zeroing and copy even where the read needs a few frames; the size the `read_verified`
/// bench chose (docs/PERFORMANCE.md, section "Design decisions").
const READ_WINDOW_MIN: usize = 64 * 1024;

/// A byte view of one segment, `len` bytes long.
pub enum SegmentBytes<'a, H: FileHandle> {
    /// A completed segment: the whole file, mapped.
    Mapped(Bytes),
    /// The active segment: read through `file`, buffered in a window.
    File {
        /// The open segment file.
        file: &'a H,
        /// Valid length of the segment (bytes written so far).
        len: u64,
        /// Start of the buffered window in the file.
        window_start: u64,
        /// The buffered bytes.
        window: Bytes,
    },
}

impl<'a, H: FileHandle> SegmentBytes<'a, H> {
    /// A view of the active segment through `file`, of which `len` bytes are valid.
    pub fn file(file: &'a H, len: u64) -> Self {
        SegmentBytes::File {
            file,
            len,
            window_start: 0,
            window: Bytes::new(),
        }
    }

    /// Drops the buffered window, so the next read goes to the file again (used to re-read a
    /// frame that failed to decode: a transient read error must not be served from the
    /// buffer). A mapped segment has no buffer.
    pub fn forget_window(&mut self) {
        if let SegmentBytes::File {
            window_start,
            window,
            ..
        } = self
        {
            *window_start = 0;
            *window = Bytes::new();
        }
    }

    /// The segment's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            SegmentBytes::Mapped(map) => map.len() as u64,
            SegmentBytes::File { len, .. } => *len,
        }
    }

    /// Up to `max_len` bytes from `position` (fewer at the segment's end), read directly.
    pub fn chunk_at(&mut self, position: u64, max_len: usize) -> std::io::Result<Bytes> {
        let end = position.saturating_add(max_len as u64).min(self.len());
        if position >= end {
            return Ok(Bytes::new());
        }
        match self {
            SegmentBytes::Mapped(map) => {
                let start = usize::try_from(position).unwrap_or(usize::MAX);
                let stop = usize::try_from(end).unwrap_or(usize::MAX);
                Ok(map
                    .get(start..stop)
                    .map_or_else(Bytes::new, |_| map.slice(start..stop)))
            }
            SegmentBytes::File { file, .. } => {
                let mut buf = vec![0u8; usize::try_from(end - position).unwrap_or(0)];
                file.read_exact_at(&mut buf, position)?;
                Ok(Bytes::from(buf))
            }
        }
    }

    /// The bytes from `position` to the end of the frame that starts there (as far as the
    /// frame's length prefix says, capped at the segment's end), or to the segment's end when
    /// the prefix is unreadable. Empty at or past the end.
    pub fn frame_at(&mut self, position: u64) -> std::io::Result<Bytes> {
        let (source, start) = self.frame_source(position)?;
        Ok(source
            .get(start..)
            .map_or_else(Bytes::new, |_| source.slice(start..)))
    }

    /// Where [`Self::frame_at`]'s bytes lie, without slicing them out: the buffer holding the
    /// frame (the map, or the window read for it) and where in it the frame starts. A
    /// start at or past the buffer's end (an empty frame) at or past the segment's end.
    pub fn frame_source(&mut self, position: u64) -> std::io::Result<(&Bytes, usize)> {
        static EMPTY: Bytes = Bytes::new();
        match self {
            SegmentBytes::Mapped(map) => Ok((map, usize::try_from(position).unwrap_or(usize::MAX))),
            SegmentBytes::File {
                file,
                len,
                window_start,
                window,
            } => {
                if position >= *len {
                    return Ok((&EMPTY, 0));
                }
                fill_window(*file, *len, window_start, window, position, 4)?;
                let prefix_at = usize::try_from(position - *window_start).unwrap_or(usize::MAX);
                let prefix = window.get(prefix_at..).unwrap_or_default();
                let frame_len = u64::from(le_u32(prefix, 0)).max(4);
                let wanted = usize::try_from(frame_len).unwrap_or(usize::MAX);
                fill_window(*file, *len, window_start, window, position, wanted)?;
                let start = usize::try_from(position - *window_start).unwrap_or(usize::MAX);
                Ok((window, start))
            }
        }
    }
}

/// Makes the window cover `[position, position + wanted)` (capped at `len`), reading it
/// from `position` on when it does not.
fn fill_window<H: FileHandle>(
    file: &H,
    len: u64,
    window_start: &mut u64,
    window: &mut Bytes,
    position: u64,
    wanted: usize,
) -> std::io::Result<()> {
    let end = position.saturating_add(wanted as u64).min(len);
    let window_end = *window_start + window.len() as u64;
    if position < *window_start || end > window_end {
        let read_len = (end - position)
            .max(READ_WINDOW_MIN as u64)
            .min(len - position);
        let mut buf = vec![0u8; usize::try_from(read_len).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, position)?;
        *window_start = position;
        *window = Bytes::from(buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            segment_num: 3,
            stream: StreamId::new(42),
            first_offset: 1000,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for i in 0..bytes.len() {
            let mut bad = bytes;
            bad[i] ^= 0x01;
            assert!(SegmentHeader::decode(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(SegmentHeader::decode(&bytes[..39]).is_err());
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(7), "00000007.seg");
        assert_eq!(parse_segment_file_name("00000007.seg"), Some(7));
        assert_eq!(parse_segment_file_name("7.seg"), None);
        assert_eq!(parse_segment_file_name("0000000x.seg"), None);
        assert_eq!(parse_segment_file_name("00000007.idx"), None);
    }
}
