//! Scanning a segment frame by frame: the one pass that recovery, index rebuilds and manifest
//! repair share. It decodes every frame (length, CRC), checks the offset sequence or, given a
//! [`ChainCursor`], every chain link, builds the segment's index, and classifies how the
//! segment ends: cleanly, at an unfinished (torn) write, or at corruption (rows 3–9 of the
//! decision table in `recovery`).
//!
//! It also follows batch boundaries (flag bit 1 of each frame, `docs/FORMAT.md`): whole
//! frames after the last frame that ends a batch belong to a batch that was never completely
//! written. When a segment ends there (cleanly or torn) the scan says where that batch starts
//! ([`Scan::open_batch`], row 10 of the table), and recovery, when it cuts the batch, puts the
//! scan back to the end of the last whole batch ([`Scan::drop_open_batch`]).

use std::path::Path;

use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

use super::fs::FileHandle;
use super::index::{SeenRecord, SegmentIndex, SegmentSummary};
use super::segment_file::SegmentBytes;
use super::stream::io_error;
use crate::chain::ChainCursor;
use crate::error::{Location, RecordError, StorageError};
use crate::le::{le_u32, le_u64};
use crate::record::{Record, MAX_FRAME_LEN, RECORD_FORMAT_VERSION, RECORD_OVERHEAD};

/// How a scan of one segment ended.
pub enum ScanEnd {
    /// At the end of the file, on a frame boundary.
    Clean,
    /// At an unfinished write (rows 3–5 of the table), before the watermark check.
    Torn {
        /// Where the torn frame starts.
        position: u64,
        /// Why it does not decode.
        reason: RecordError,
    },
    /// At corruption (rows 6, 8, 9).
    Corrupt(StorageError),
}

/// A batch whose whole frames run to the end of the segment, or to a torn write, without the
/// frame that ends it (row 10).
pub struct OpenBatch {
    /// The scan's state where the batch starts.
    start: BatchEnd,
    /// [`RecordError::IncompleteBatch`]: where the batch starts, how much of it there is.
    pub reason: RecordError,
}

impl OpenBatch {
    /// Where the batch's first frame starts.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.start.position()
    }
}

/// The result of scanning a segment.
pub struct Scan {
    /// The index of every whole record before the end.
    pub index: SegmentIndex,
    /// The chain hash of the last data record, if any.
    pub last_hash: Option<ChainHash>,
    /// How it ended.
    pub end: ScanEnd,
    /// The first chain break the scan passed (a whole frame at the right offset with a wrong
    /// `prev_hash`); the scan resumes after it.
    pub chain_break: Option<StorageError>,
    /// Whole frames decoded (the recovery report sums them: how much open had to read).
    pub records: u64,
    /// The batch the segment ends in, if its end is not a batch's end (and is clean or torn).
    pub open_batch: Option<OpenBatch>,
    /// The head the scan started from (a resumed scan's).
    head: Option<ChainHash>,
}

impl Scan {
    /// Puts the scan back where [`Self::open_batch`] starts (index, head, end): what the
    /// segment is once that batch is cut off. Returns why it was cut, `None` when the
    /// segment ends on a batch's end.
    pub fn drop_open_batch(&mut self) -> Option<RecordError> {
        let open = self.open_batch.take()?;
        open.start.restore(&mut self.index);
        self.last_hash = last_hash(open.start.cursor, open.start.last_data, self.head);
        self.end = ScanEnd::Clean;
        Some(open.reason)
    }
}

/// The chain hash of the last data record a scan passed: the cursor's when it linked them,
/// else the record's own; `head` (where the scan started) when it passed none.
fn last_hash(
    cursor: Option<ChainCursor>,
    last_data: Option<Record>,
    head: Option<ChainHash>,
) -> Option<ChainHash> {
    match cursor {
        Some(cursor) if last_data.is_some() => cursor.prev_hash(),
        _ => last_data.as_ref().map(Record::compute_hash).or(head),
    }
}

/// One segment to scan.
pub struct ScanTarget<'a> {
    /// The stream.
    pub stream: StreamId,
    /// The segment number.
    pub num: u32,
    /// The segment file.
    pub path: &'a Path,
    /// The offset of its first data record.
    pub first_offset: u64,
    /// Sparse index granularity.
    pub index_interval: u64,
}

/// Scans a segment from its header to its end. With `cursor`, every record is linked to the
/// chain from it; without, only CRCs and the offset sequence are checked. I/O errors are the
/// only `Err`.
pub fn scan_segment<H: FileHandle>(
    target: &ScanTarget<'_>,
    bytes: &mut SegmentBytes<'_, H>,
    cursor: Option<ChainCursor>,
) -> Result<Scan, StorageError> {
    let start = SegmentIndex::empty(target.first_offset);
    scan_from(target, bytes, cursor, start, None)
}

/// Scans a segment from the end of `index` (the records before it already accounted for) to
/// its end; `head` is the chain hash of the last data record before that point when the
/// caller vouches for it (a resumed scan), and `cursor` then continues from it.
pub fn scan_from<H: FileHandle>(
    target: &ScanTarget<'_>,
    bytes: &mut SegmentBytes<'_, H>,
    mut cursor: Option<ChainCursor>,
    mut index: SegmentIndex,
    head: Option<ChainHash>,
) -> Result<Scan, StorageError> {
    let io = |source| io_error(target.path, source);
    let location = |position| Location {
        segment: target.num,
        position,
        file: Some(target.path.to_path_buf()),
    };
    let len = bytes.len();
    let mut last_data: Option<Record> = None;
    let mut position = index.summary.len_bytes;
    let mut chain_break = None;
    let mut records = 0u64;
    let mut batch_end = BatchEnd::at(&index, None, cursor);
    let end = loop {
        if position >= len {
            break ScanEnd::Clean;
        }
        let expected = Offset::new(index.summary.next_offset);
        let (frame, decoded) = read_and_decode(bytes, position).map_err(io)?;
        let (record, frame_len) = match decoded {
            Ok(decoded) => decoded,
            Err(reason) => {
                if could_be_torn(&reason)
                    && looks_torn(bytes, position, &frame, expected).map_err(io)?
                {
                    break ScanEnd::Torn { position, reason };
                }
                break ScanEnd::Corrupt(StorageError::CorruptRecord {
                    stream: target.stream,
                    offset: expected,
                    location: location(position),
                    source: reason,
                });
            }
        };
        let linked = match cursor.as_mut() {
            Some(cursor) if record.is_restart() => {
                cursor.check_restart(&record, || location(position))
            }
            Some(cursor) => cursor.check(&record, || location(position)).map(|_| ()),
            None if record.offset() != expected => Err(StorageError::OffsetMismatch {
                stream: target.stream,
                offset: expected,
                found: record.offset(),
                location: location(position),
            }),
            None => Ok(()),
        };
        match linked {
            // Row 9b: a whole frame at the right offset whose link is wrong. Its boundaries are
            // trustworthy (its CRC holds), so the scan notes the break and resumes the chain
            // from the frame's own link; reads that reach it still fail on it.
            Err(error @ StorageError::ChainVerificationFailed { .. }) => {
                if chain_break.is_none() {
                    chain_break = Some(error);
                }
                let stream = target.stream;
                let resumed = ChainCursor::resume(stream, record.offset(), record.prev_hash());
                cursor = Some(resumed);
                if let Some(cursor) = cursor.as_mut().filter(|_| !record.is_restart()) {
                    let _ = cursor.check(&record, || location(position));
                }
            }
            Err(error) => break ScanEnd::Corrupt(error),
            Ok(()) => {}
        }
        let seen = SeenRecord {
            is_restart: record.is_restart(),
            offset: record.offset().as_u64(),
            position,
            frame_len: frame_len as u64,
            payload_len: record.payload().len(),
            compressed: record.compression() != kimberlite_types::CompressionKind::None,
        };
        index.push(seen, target.index_interval);
        records += 1;
        let ends_batch = !record.continues_batch();
        if !record.is_restart() {
            last_data = Some(record);
        }
        position += frame_len as u64;
        if ends_batch {
            batch_end = BatchEnd::at(&index, last_data.clone(), cursor);
        }
    };
    // Row 10: whole frames of a batch that never ended, at the end of the segment.
    let open_batch = match end {
        ScanEnd::Clean | ScanEnd::Torn { .. } if batch_end.position() < position => {
            let first_offset = batch_end.summary.next_offset;
            Some(OpenBatch {
                reason: RecordError::IncompleteBatch {
                    first_offset,
                    data_records: index.summary.next_offset - first_offset,
                },
                start: batch_end,
            })
        }
        _ => None,
    };
    let last_hash = last_hash(cursor, last_data, head);
    Ok(Scan {
        index,
        last_hash,
        end,
        chain_break,
        records,
        open_batch,
        head,
    })
}

/// The scan's state just after the last frame that ended a batch: where a segment that ends
/// inside the next batch is cut back to.
struct BatchEnd {
    summary: SegmentSummary,
    restart_entries: usize,
    data_entries: usize,
    last_data: Option<Record>,
    cursor: Option<ChainCursor>,
}

impl BatchEnd {
    fn at(index: &SegmentIndex, last_data: Option<Record>, cursor: Option<ChainCursor>) -> Self {
        Self {
            summary: index.summary,
            restart_entries: index.restart_records.len(),
            data_entries: index.data.len(),
            last_data,
            cursor,
        }
    }

    fn position(&self) -> u64 {
        self.summary.len_bytes
    }

    /// Puts `index` back as it was here (it only grew since).
    fn restore(&self, index: &mut SegmentIndex) {
        index.summary = self.summary;
        index.restart_records.truncate(self.restart_entries);
        index.data.truncate(self.data_entries);
    }
}

/// Times a frame that does not decode is read again before the scan believes it.
///
/// A read can return a flipped bit once (a transient media or bus error) while the stored bytes
/// are fine. Recovery acts on what it reads: it truncates a "torn" last record and refuses
/// appends after "corruption". Acting on a one-off bad read would truncate an acknowledged,
/// fsynced record. A torn write or real corruption reads the same every time; a transient
/// error does not.
const DECODE_ATTEMPTS: usize = 3;

/// A frame's decoding: the record and its length, or why it does not decode.
type Decoded = Result<(Record, usize), RecordError>;

/// Reads and decodes the frame at `position`, reading it again (up to [`DECODE_ATTEMPTS`]
/// reads in all) while it fails to decode; returns the last bytes read and their decoding.
fn read_and_decode<H: FileHandle>(
    bytes: &mut SegmentBytes<'_, H>,
    position: u64,
) -> std::io::Result<(bytes::Bytes, Decoded)> {
    let mut attempt = 1;
    loop {
        let frame = bytes.frame_at(position)?;
        let decoded = Record::from_bytes(&frame);
        if decoded.is_ok() || attempt == DECODE_ATTEMPTS {
            return Ok((frame, decoded));
        }
        // Read the file again, not the bytes already buffered.
        bytes.forget_window();
        attempt += 1;
    }
}

/// Whether a frame that fails to decode with `reason` could be an unfinished write: only when
/// its length or its CRC fails. A frame whose CRC checks was written whole, so a field it
/// holds that this build does not accept (another format version, an unknown kind, codec or
/// flag, a bad payload) is never cut off as torn: it is reported and left on disk.
fn could_be_torn(reason: &RecordError) -> bool {
    matches!(
        reason,
        RecordError::Truncated { .. }
            | RecordError::FrameTooSmall { .. }
            | RecordError::FrameTooLarge { .. }
            | RecordError::ChecksumMismatch { .. }
    )
}

/// Rows 3–6 of the decision table: whether the undecodable frame at `position` is an
/// unfinished write at the end of the file.
fn looks_torn<H: FileHandle>(
    bytes: &mut SegmentBytes<'_, H>,
    position: u64,
    frame: &[u8],
    expected: Offset,
) -> std::io::Result<bool> {
    let len = bytes.len();
    let geometric = if frame.len() < 4 {
        true
    } else {
        let declared = u64::from(le_u32(frame, 0));
        let valid = (RECORD_OVERHEAD as u64..=MAX_FRAME_LEN as u64).contains(&declared);
        let end = position.saturating_add(declared);
        let torn_frame = valid
            && ((end > len && !only_its_length_is_wrong(frame))
                || (end == len && shows_unwritten_bytes(frame, position)));
        torn_frame || rest_is_zero(bytes, position)?
    };
    Ok(geometric && !later_frame_decodes(bytes, position, expected)?)
}

/// The sector size the evidence of unwritten bytes is looked for in: the smallest a disk
/// writes, so that pieces of larger sectors (4 KiB) and pages are found too.
pub const SECTOR_BYTES: u64 = 512;

/// Row 4: whether a frame that is whole to the end of the file (starting at file position
/// `position`) but fails its CRC shows what an unfinished write leaves behind. Bytes a write
/// never got to read as zero (past a file's old end, in holes and in blocks allocated ahead),
/// so an unfinished frame has its CRC field all zero (the end of the write lost) or a piece of
/// it that fills a disk sector's share of the frame all zero (a sector in the middle lost).
///
/// Why: a frame whose bytes are all there but one bit differs (bit rot, a tampered byte in
/// the last record) fails its CRC exactly as a torn write does; cutting it off as torn would
/// delete a record that may have been synced and acknowledged, with `verify` then finding
/// the shortened stream intact. Such a frame has no zero sector and a CRC field that is not
/// zero: it is damage, reported and left on disk. The price: a torn write on a file system
/// that shows stale bytes instead of zeros after a crash (ext4 without a journal can, for
/// blocks not allocated ahead) is reported as damage too: the stream then refuses appends
/// until the tail is dealt with, but nothing is cut silently.
#[must_use]
pub fn shows_unwritten_bytes(frame: &[u8], position: u64) -> bool {
    let crc_field = frame.len().checked_sub(4).and_then(|at| frame.get(at..));
    if crc_field.is_some_and(|field| field.iter().all(|&byte| byte == 0)) {
        return true;
    }
    let mut start = 0usize;
    while start < frame.len() {
        let at = position.saturating_add(start as u64);
        let to_boundary = SECTOR_BYTES - at % SECTOR_BYTES;
        let end = frame
            .len()
            .min(start.saturating_add(usize::try_from(to_boundary).unwrap_or(usize::MAX)));
        let piece = frame.get(start..end).unwrap_or_default();
        if piece.iter().all(|&byte| byte == 0) {
            return true;
        }
        start = end;
    }
    false
}

/// Row 3: whether `frame` (the bytes from a frame's start to the end of the file, fewer than
/// its length prefix says) is in fact a whole frame with a damaged length prefix: its CRC
/// checks once the prefix is set to the bytes there are. A torn write cannot leave that (its
/// CRC field would be missing or zero); a flipped bit in the prefix of the last record does,
/// and it is damage, not a write to cut off.
#[must_use]
pub fn only_its_length_is_wrong(frame: &[u8]) -> bool {
    let Ok(actual) = u32::try_from(frame.len()) else {
        return false;
    };
    if frame.len() < RECORD_OVERHEAD {
        return false;
    }
    let crc_at = frame.len() - 4;
    let (Some(fields), Some(stored)) = (frame.get(4..crc_at), frame.get(crc_at..)) else {
        return false;
    };
    let computed = crc32c::crc32c_append(crc32c::crc32c(&actual.to_le_bytes()), fields);
    stored == computed.to_le_bytes()
}

fn rest_is_zero<H: FileHandle>(
    bytes: &mut SegmentBytes<'_, H>,
    from: u64,
) -> std::io::Result<bool> {
    let mut position = from;
    while position < bytes.len() {
        let chunk = bytes.chunk_at(position, 1 << 20)?;
        if chunk.is_empty() {
            break;
        }
        if chunk.iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
        position += chunk.len() as u64;
    }
    Ok(true)
}

/// Bytes of a frame's header the row-6 probe filters candidates on: length, version, kind,
/// compression, flags and offset.
const PROBE_HEADER_LEN: usize = 16;
/// The row-6 probe reads the rest of the segment in chunks of this size.
const PROBE_CHUNK_LEN: usize = 1 << 20;

/// Row 6: whether any frame after `position` decodes and holds an offset at or after
/// `expected` (then the bad frame is corruption with intact records behind it).
///
/// Every byte position is a candidate; a cheap filter on the header fields (valid length that
/// fits, known version, kind, codec and flags, a plausible offset) rejects almost all of them
/// in memory before a full decode (CRC) is tried, so the probe costs about one read of the
/// rest of the segment.
fn later_frame_decodes<H: FileHandle>(
    bytes: &mut SegmentBytes<'_, H>,
    position: u64,
    expected: Offset,
) -> std::io::Result<bool> {
    let len = bytes.len();
    let mut chunk_start = position + 1;
    while chunk_start + (RECORD_OVERHEAD as u64) <= len {
        let chunk = bytes.chunk_at(chunk_start, PROBE_CHUNK_LEN + PROBE_HEADER_LEN)?;
        for i in 0..PROBE_CHUNK_LEN {
            let Some(header) = chunk.get(i..i + PROBE_HEADER_LEN) else {
                break;
            };
            let candidate = chunk_start + i as u64;
            if !plausible_header(header, candidate, len, expected) {
                continue;
            }
            let frame = bytes.frame_at(candidate)?;
            if let Ok((record, _)) = Record::from_bytes(&frame) {
                if record.offset() >= expected {
                    return Ok(true);
                }
            }
        }
        chunk_start += PROBE_CHUNK_LEN as u64;
    }
    Ok(false)
}

/// Whether the 16 bytes at `candidate` could start a frame of this segment (see `crate::record`
/// for the field positions).
fn plausible_header(header: &[u8], candidate: u64, len: u64, expected: Offset) -> bool {
    let frame_len = u64::from(le_u32(header, 0));
    let offset = le_u64(header, 8);
    let small = |at: usize, max: u8| header.get(at).is_some_and(|&byte| byte <= max);
    (RECORD_OVERHEAD as u64..=MAX_FRAME_LEN as u64).contains(&frame_len)
        && candidate.saturating_add(frame_len) <= len
        && header.get(4) == Some(&RECORD_FORMAT_VERSION)
        && small(5, 1)
        && small(6, 1)
        && small(7, 3)
        && offset >= expected.as_u64()
        && offset - expected.as_u64() <= len - candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(len: usize, fill: u8) -> Vec<u8> {
        let mut frame = vec![fill; len];
        frame[..4].copy_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
        frame
    }

    #[test]
    fn a_whole_frame_with_a_zero_crc_field_or_sector_shows_unwritten_bytes() {
        let mut frame = frame_of(312, 7);
        assert!(!shows_unwritten_bytes(&frame, 1_000), "all written");
        frame[308..].fill(0);
        assert!(
            shows_unwritten_bytes(&frame, 1_000),
            "CRC field never written"
        );

        // A frame across sectors 512..1024 and 1024..1536 from 1,000: the second sector's
        // share (bytes 24..) lost while the CRC field is there.
        let mut frame = frame_of(600, 7);
        frame[24..536].fill(0);
        assert!(shows_unwritten_bytes(&frame, 1_000));
        // The same zeros not on a sector boundary of the file are payload, not evidence.
        assert!(!shows_unwritten_bytes(&frame, 1_001));
    }

    #[test]
    fn a_flipped_bit_is_no_evidence_of_an_unfinished_write() {
        for position in [0, 40, 511, 512, 513, 4_095] {
            let mut frame = frame_of(312, 0x5a);
            frame[150] ^= 1;
            assert!(!shows_unwritten_bytes(&frame, position), "{position}");
        }
        // A single-byte share of a sector that happens to be zero counts (at the end).
        let mut frame = frame_of(312, 0x5a);
        frame[311] = 0;
        assert!(shows_unwritten_bytes(&frame, 512 - 311));
        assert!(!shows_unwritten_bytes(&[], 0), "no bytes, no evidence");
    }

    #[test]
    fn a_frame_whose_length_alone_was_damaged_is_recognised() {
        let mut frame = frame_of(RECORD_OVERHEAD + 10, 3);
        let crc_at = frame.len() - 4;
        let crc = crc32c::crc32c(&frame[..crc_at]);
        frame[crc_at..].copy_from_slice(&crc.to_le_bytes());
        assert!(
            only_its_length_is_wrong(&frame),
            "the length is right: still a whole frame"
        );
        frame[1] ^= 0x01; // the length now says 256 bytes more
        assert!(only_its_length_is_wrong(&frame));
        frame[20] ^= 0x01; // and a payload byte: no longer a whole frame
        assert!(!only_its_length_is_wrong(&frame));
        assert!(
            !only_its_length_is_wrong(&frame[..10]),
            "shorter than any frame"
        );
    }
}
