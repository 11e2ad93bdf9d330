//! Resuming the active segment's scan at the end its persisted index covers, instead of at
//! its header: what keeps `Storage::open` from re-reading and re-hashing a clean segment.
//!
//! # Why skipping the covered bytes is sound
//!
//! `flush_indexes` gives the active segment's index a *resume point* (the chain hash of the
//! last data record it covers, `index`) only when every byte it covers had been fsynced
//! ([`resume_head`]) and the segment held no chain break recovery had reported. Those bytes
//! then stay in the file: truncation only ever cuts past the last fsync (a torn tail is cut at
//! or past the scan's start, a failed batch back to where it began). So a full scan would find
//! exactly what the index says up to its end, and resuming there gives the same head, index,
//! and tail decision (`recovery`'s table applies to the bytes past it, unchanged). What the
//! resume does not re-read is trusted as a completed segment's records are: damage to
//! durable bytes there is found by `verify_stream` and by every read that reaches it.
//!
//! # What is checked before resuming
//!
//! A stale or foreign index must not be believed, so the resume point is used only when:
//! the file decodes with a resume point for this stream and segment; it starts at the
//! segment's first offset; the bytes it covers are all in the file (a shorter file, say after
//! a crash dropped writes the index was not supposed to cover, falls back); the first frame
//! decodes at the header's end with the first offset and links to the previous segment's
//! head; the last covered data record decodes at its recorded position with the recorded
//! offset, hashes to the recorded head and ends a batch; and what follows it up to the covered end is
//! whole restart record frames repeating that head. Anything else falls back to the full scan,
//! which decides as it always did.

use kimberlite_crypto::ChainHash;
use kimberlite_types::Offset;

use super::fs::{FileHandle, FileSystem, UnexpectedEntry};
use super::index::{index_file_name, SegmentIndex, StoredIndex};
use super::scan::{scan_from, scan_segment, Scan, ScanTarget};
use super::segment_file::{SegmentBytes, SEGMENT_HEADER_LEN};
use crate::chain::ChainCursor;
use crate::error::StorageError;
use crate::record::Record;

const HEADER_LEN: u64 = SEGMENT_HEADER_LEN as u64;

/// The resume point an active segment's index may carry when written now: the stream's head,
/// if the segment holds a data record, every byte the index covers is fsynced (`synced_len`)
/// and no chain break was reported in it (its scan must then run again at every open, to
/// report the break again).
pub fn resume_head(
    index: &SegmentIndex,
    head: Option<ChainHash>,
    synced_len: u64,
    chain_break: bool,
) -> Option<ChainHash> {
    let resumable = index.summary.last_data_position.is_some()
        && synced_len >= index.summary.len_bytes
        && !chain_break;
    head.filter(|_| resumable)
}

/// The active segment's index file as decoded, if it is readable and names this segment (one
/// read: an unreadable index only costs the fast path, never correctness). A link or an entry
/// of the wrong type in its place is the one failure returned: damage to report, not a
/// missing index.
pub fn read_stored<F: FileSystem>(
    fs: &F,
    dir: &std::path::Path,
    target: &ScanTarget<'_>,
) -> Result<Option<StoredIndex>, UnexpectedEntry> {
    let bytes = match fs.read(&dir.join(index_file_name(target.num))) {
        Ok(bytes) => bytes,
        Err(error) => {
            return UnexpectedEntry::in_error(&error)
                .cloned()
                .map_or(Ok(None), Err)
        }
    };
    Ok(SegmentIndex::decode_stored(&bytes, target.stream, target.num).ok())
}

/// Scans the active segment: from the end `stored` covers when its resume point checks out
/// (see the module docs), else from the header. `previous` is the previous segment's head
/// (`None` for segment 0, `Err` when it could not be decoded). I/O errors of the scan itself
/// are the only `Err`.
pub fn scan_active<H: FileHandle>(
    target: &ScanTarget<'_>,
    bytes: &mut SegmentBytes<'_, H>,
    stored: Option<&StoredIndex>,
    previous: Option<&Result<ChainHash, String>>,
) -> Result<Scan, StorageError> {
    let base = match previous {
        None => Some(None),
        Some(Ok(head)) => Some(Some(*head)),
        Some(Err(_)) => None,
    };
    let resumed = base.zip(stored).and_then(|(base, stored)| {
        let head = check_resume_point(target, bytes, stored, base).ok()?;
        Some((stored.index.clone(), head))
    });
    if let Some((index, head)) = resumed {
        let next = Offset::new(index.summary.next_offset);
        let cursor = ChainCursor::resume(target.stream, next, Some(head));
        return scan_from(target, bytes, Some(cursor), index, Some(head));
    }
    // The full scan: linked from the previous segment's head when it decodes, else only
    // CRC- and offset-checked (its own first link is then not checked).
    let cursor = base.map(|base| match base {
        None => ChainCursor::at_start(target.stream),
        Some(head) => {
            ChainCursor::resume(target.stream, Offset::new(target.first_offset), Some(head))
        }
    });
    scan_segment(target, bytes, cursor)
}

/// Checks `stored`'s resume point against the segment (module docs); returns the head to
/// resume from, or why it cannot be used.
pub fn check_resume_point<H: FileHandle>(
    target: &ScanTarget<'_>,
    bytes: &mut SegmentBytes<'_, H>,
    stored: &StoredIndex,
    base: Option<ChainHash>,
) -> Result<ChainHash, String> {
    let head = stored.head.ok_or("the index has no resume point")?;
    let summary = &stored.index.summary;
    let end = summary.len_bytes;
    if summary.first_offset != target.first_offset || summary.next_offset <= summary.first_offset {
        return Err("the index's offset range does not fit the segment".to_owned());
    }
    if end > bytes.len() || end <= HEADER_LEN {
        return Err(format!(
            "the index covers {end} bytes, the file has {}",
            bytes.len()
        ));
    }
    let last = summary
        .last_data_position
        .filter(|&position| (HEADER_LEN..end).contains(&position))
        .ok_or("the index's last data position is outside what it covers")?;
    let (first, _) = frame(bytes, HEADER_LEN, end)?;
    if first.offset().as_u64() != summary.first_offset || first.prev_hash() != base {
        return Err("the first frame does not start the segment's chain".to_owned());
    }
    let (record, len) = frame(bytes, last, end)?;
    let last_offset = summary.next_offset - 1;
    // The index is written only between batches, so its last record ends one.
    if record.is_restart()
        || record.continues_batch()
        || record.offset().as_u64() != last_offset
        || record.compute_hash() != head
    {
        return Err(format!(
            "the frame at {last} is not the indexed record {last_offset} with the indexed hash"
        ));
    }
    // Only restart records (repeating the head) may follow the last data record in what the index
    // covers; each frame is at least a record's overhead long, so this loop ends.
    let mut position = last + len as u64;
    while position < end {
        let (restart, len) = frame(bytes, position, end)?;
        let repeats = restart.is_restart()
            && restart.offset().as_u64() == summary.next_offset
            && restart.prev_hash() == Some(head);
        if !repeats {
            return Err(format!(
                "the frame at {position} is not a restart record of the head"
            ));
        }
        position += len as u64;
    }
    Ok(head)
}

/// Decodes the frame at `position`, which must end at or before `end`.
fn frame<H: FileHandle>(
    bytes: &mut SegmentBytes<'_, H>,
    position: u64,
    end: u64,
) -> Result<(Record, usize), String> {
    let raw = bytes.frame_at(position).map_err(|e| e.to_string())?;
    let (record, len) = Record::from_bytes(&raw).map_err(|e| e.to_string())?;
    if position + len as u64 > end {
        return Err(format!(
            "the frame at {position} runs past the indexed end {end}"
        ));
    }
    Ok((record, len))
}
