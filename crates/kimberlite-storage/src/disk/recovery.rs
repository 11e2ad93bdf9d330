//! Opening a stream directory: reconcile manifest, segments and indexes, repair what is
//! unambiguous, report the rest.
//!
//! # What is trusted
//!
//! - A *completed* segment listed as completed by a readable manifest: its header and its
//!   length are checked against the manifest; its records are not re-read (that is what
//!   `verify_stream` is for). Its index is used if it matches (else rebuilt by a scan).
//! - The *active* (last) segment is scanned to its end: every frame is decoded (length, CRC)
//!   and linked (offset, `prev_hash`), which yields the stream's head, its index and its true
//!   end. The scan starts at the header, linked from the previous segment's last record,
//!   unless the segment's index carries a *resume point* that checks out (`resume`): then the
//!   bytes it covers (fsynced when it was written) are trusted as a completed segment's are,
//!   after decoding their first frame and their last data record (offset and chain hash must
//!   match the index), and the scan starts where the index ends, from its head. The table
//!   below applies to the scanned bytes either way; any disagreement means a full scan.
//!
//! # Decision table for the active segment's tail
//!
//! The scan stops at the first frame that does not decode or sits at the wrong offset, at byte
//! position `p` (it notes and passes a whole frame whose only fault is its link, row 9b).
//! `W` is the manifest's durable watermark for the segment (its recorded `file_size_bytes`,
//! fsynced before the manifest was written), the header length when there is none.
//!
//! | # | tail state at `p`                                  | checksum | chain | `p` vs `W` | action                |
//! |---|----------------------------------------------------|----------|-------|------------|-----------------------|
//! | 1 | end of file on a frame boundary                    | –        | ok    | `p >= W`   | clean                 |
//! | 2 | end of file on a frame boundary                    | –        | ok    | `p < W`    | damage (bytes lost)   |
//! | 3 | < 4 bytes left, or a valid length past EOF (†)     | –        | –     | `p >= W`   | torn: truncate to `p` |
//! | 4 | a valid length ending at EOF, unwritten (‡)        | bad      | –     | `p >= W`   | torn: truncate to `p` |
//! | 5 | every byte from `p` to EOF is zero                 | bad      | –     | `p >= W`   | torn: truncate to `p` |
//! | 6 | rows 3–5, but a later frame at `q > p` decodes     | bad      | –     | any        | damage                |
//! | 7 | rows 3–5                                           | bad      | –     | `p < W`    | damage                |
//! | 8 | anything else that does not decode (bytes follow)  | bad      | –     | any        | damage                |
//! | 9a| frame decodes, wrong offset                        | ok       | bad   | any        | damage                |
//! | 9b| frame decodes, right offset, wrong `prev_hash`     | ok       | bad   | any        | report, scan on       |
//! | 10| rows 1 or 3–5, whole frames of a batch that never ended before `p` (§): the batch starts at `b` | – | ok | `b >= W` | torn: truncate to `b` |
//! | 10'| the same                                          | –        | ok    | `b < W`    | damage                |
//!
//! (†) Unless the bytes to EOF are a whole frame whose CRC checks once its length prefix is set
//! to them: a flipped bit in the last record's prefix, row 8
//! ([`super::scan::only_its_length_is_wrong`]).
//! (‡) Its CRC field, or a 512-byte sector's share of the frame, reads all zero, as bytes a
//! write never got to do; a whole frame with changed bytes is row 8
//! ([`super::scan::shows_unwritten_bytes`]).
//!
//! (§) The batch's frames all carry flag bit 1 ("the batch continues", `docs/FORMAT.md`) and
//! the frame that would have ended it is missing: the writer stopped in the middle of one
//! `append_batch` call's batch. A batch is acknowledged only once whole (and synced, when
//! durability is asked), and the watermark only ever lies on a batch boundary, so the cut
//! bytes were never acknowledged as durable. Row 10 turns "any prefix of an unsynced batch"
//! (what a crash in the middle of its writes leaves) into "none of it".
//!
//! *Truncate* copies the cut bytes to `torn/` in the stream's directory (`quarantine`), then
//! cuts the file back to the last whole record and fsyncs it; the report says so and names
//! the copy.
//! *Damage* changes nothing on disk: the stream opens, reads that reach `p` fail with an error
//! naming stream, offset, segment file and byte `p`, and appends to the stream are refused
//! (its head is unknown). *Report, scan on* (row 9b): the frame's own CRC vouches for its
//! boundaries, so the scan notes the break, resumes the chain from the frame's link and goes
//! on; the stream stays appendable, and reads that reach the break fail on it. Row 6 keeps a
//! bit flip in a length prefix from being mistaken for a torn write. A torn write is only ever
//! possible past the last fsync, so a failure below `W` is never treated as one.
//!
//! # Manifest against files
//!
//! | manifest                 | segment files                     | action                              |
//! |--------------------------|-----------------------------------|-------------------------------------|
//! | readable, lists `0..n`   | `0..n`                            | open                                |
//! | readable, lists `0..m`   | `0..n`, `n > m` (rotation crash)  | scan the unlisted ones, rewrite     |
//! | readable, lists `0..m`   | `0..n`, `n < m` (file missing)    | unopened: `Unrecoverable`           |
//! | missing or unreadable    | `0..n`, each complete one clean   | rebuild from a scan of all, rewrite |
//! | missing or unreadable    | a gap, a bad header, or damage in a completed segment | unopened |
//! | any                      | none                              | no stream (crash at creation)       |
//! | any                      | a header of another format version | refuse: `UnsupportedFormat`        |
//!
//! With a cut record (`pruned.json`, retention) segments start at its first kept one (module
//! `prune` has its rows).
//! *Unopened*: `Storage::open` keeps such a stream out of the store, untouched, and answers
//! every call on it with the `Unrecoverable` error; the other streams open. *Refuse*: the
//! whole store is not opened.
//!
//! Within a segment, a frame whose CRC checks but which holds a field this build does not
//! accept (another record format version, an unknown kind, codec or flag) was written whole:
//! it is never taken for a torn write (rows 3–5 apply only to frames whose length or CRC
//! fails), so opening a file of another version never cuts it.

use std::path::Path;

use kimberlite_types::StreamId;

use super::config::StorageConfig;
use super::fs::{EntryKind, FileHandle, FileSystem};
use super::manifest::{Manifest, MANIFEST_FILE};
use super::meta::write_manifest;
use super::prune_recovery::{complete_prune, read_cut_record};
use super::pruned::PrunePoint;
use super::quarantine::TORN_DIR;
use super::scan::ScanTarget;
use super::segment_file::{
    parse_segment_file_name, segment_path, HeaderError, SegmentHeader, SEGMENT_HEADER_LEN,
    SEGMENT_VERSION,
};
use super::stream::{io_error, SegmentFiles, StreamState};
use crate::error::StorageError;
use crate::recovery_report::{RecoveryAction, RecoveryReport};
use crate::rotation::SegmentMeta;

const HEADER_LEN: u64 = SEGMENT_HEADER_LEN as u64;

mod active;
mod completed;

/// Opens the stream in `dir`; `None` when the directory holds no segment (a crash while the
/// stream was being created).
pub fn open_stream<F: FileSystem>(
    fs: &F,
    dir: &Path,
    stream: StreamId,
    config: &StorageConfig,
    report: &mut RecoveryReport,
) -> Result<Option<StreamState<F>>, StorageError> {
    let unrecoverable = |path: &Path, reason: String| StorageError::Unrecoverable {
        stream,
        path: path.to_path_buf(),
        reason,
    };
    let names = fs.list_dir(dir).map_err(|source| io_error(dir, source))?;
    if names.iter().any(|name| name == TORN_DIR) {
        // Written only when a tail is cut: a link or a file there is reported now, not only
        // when a cut is refused.
        let torn = dir.join(TORN_DIR);
        if fs.entry_kind(&torn).ok().flatten() != Some(EntryKind::Dir) {
            report
                .actions
                .push(RecoveryAction::UnexpectedEntry { path: torn });
        }
    }
    for name in names.iter().filter(|name| name.ends_with(".tmp")) {
        let file = dir.join(name);
        match fs.remove_file(&file) {
            Ok(()) => {}
            // Gone between the listing and now: a writer beside a read-only open renamed it
            // into place. Nothing to remove, nothing to report.
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(io_error(&file, source)),
        }
        report
            .actions
            .push(RecoveryAction::TempFileRemoved { file });
    }
    let mut numbers: Vec<u32> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    numbers.sort_unstable();
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = if names.iter().any(|name| name == MANIFEST_FILE) {
        with_rereads(|| {
            let bytes = fs
                .read(&manifest_path)
                .map_err(|e| io_error(&manifest_path, e))?;
            Ok(Manifest::decode(&bytes, stream))
        })?
    } else {
        Err("manifest.json is missing".to_owned())
    };
    if numbers.is_empty() {
        return match manifest {
            Ok(_) => Err(unrecoverable(
                dir,
                "the manifest lists segments, none exists".into(),
            )),
            Err(_) => Ok(None),
        };
    }
    let pruned = read_cut_record(fs, dir, stream, &names)?;
    let base = pruned.as_ref().map_or(0, |(_, point)| point.first_segment);
    if let Some((_, point)) = &pruned {
        numbers = complete_prune(fs, dir, stream, point, numbers, report)?;
        if numbers.is_empty() {
            let reason = "the cut record keeps segments, none exists".to_owned();
            return Err(unrecoverable(dir, reason));
        }
    }
    if let Some((i, n)) = (base..)
        .zip(&numbers)
        .map(|(i, n)| (i, *n))
        .find(|(i, n)| n != i)
    {
        let reason =
            format!("segment files are not numbered {base}..n: found {n} where {i} belongs");
        return Err(unrecoverable(dir, reason));
    }
    let numbers: Vec<u32> = (0..base).chain(numbers).collect();
    let (listed, repair_reason) = match manifest {
        Ok(manifest) if manifest.segments.len() > numbers.len() => {
            let missing = segment_path(dir, numbers.len() as u32);
            let reason = "the manifest lists this segment, but the file is missing".to_owned();
            return Err(unrecoverable(&missing, reason));
        }
        Ok(manifest) if manifest.segments.len() < numbers.len() => {
            let reason = format!(
                "manifest lists {} segments, {} files exist",
                manifest.segments.len(),
                numbers.len()
            );
            (manifest.segments, Some(reason))
        }
        Ok(manifest) => (manifest.segments, None),
        Err(reason) => (Vec::new(), Some(reason)),
    };
    let mut opener = Opener {
        fs,
        dir,
        stream,
        config,
        report,
        metas: Vec::new(),
        segments: Vec::new(),
        pruned: pruned.as_ref().map(|(_, point)| point.clone()),
    };
    let count = numbers.len();
    for num in numbers.iter().take(count - 1) {
        if let Some(entry) = pruned
            .as_ref()
            .and_then(|(kept, _)| kept.get(*num as usize))
        {
            opener.push_pruned(entry);
            continue;
        }
        let entry = listed.get(*num as usize).filter(|entry| entry.completed);
        opener.open_completed(*num, entry)?;
    }
    let active_num = u32::try_from(count - 1).unwrap_or(u32::MAX);
    let mut state = opener.open_active(active_num, listed.get(count - 1))?;
    if let Some(reason) = repair_reason {
        if state.damage.is_none() {
            let len = state
                .active_files()
                .map_or(0, |files| files.index.summary.len_bytes);
            state
                .active
                .sync_data()
                .map_err(|source| io_error(dir, source))?;
            state.synced_len = len;
            write_manifest(fs, &state).map_err(|source| io_error(&manifest_path, source))?;
            state.manifest_len = len;
        }
        report
            .actions
            .push(RecoveryAction::ManifestRepaired { stream, reason });
    }
    Ok(Some(state))
}

/// Opening state shared by the segments of one stream.
struct Opener<'a, F: FileSystem> {
    fs: &'a F,
    dir: &'a Path,
    stream: StreamId,
    config: &'a StorageConfig,
    report: &'a mut RecoveryReport,
    metas: Vec<SegmentMeta>,
    segments: Vec<SegmentFiles>,
    /// Where retention cut the stream, if it did (`pruned.json`).
    pruned: Option<PrunePoint>,
}

impl<F: FileSystem> Opener<'_, F> {
    fn unrecoverable(&self, path: &Path, reason: String) -> StorageError {
        StorageError::Unrecoverable {
            stream: self.stream,
            path: path.to_path_buf(),
            reason,
        }
    }

    fn expected_first(&self) -> u64 {
        self.metas.last().map_or(0, |meta| meta.next_offset)
    }

    fn check_header(&self, path: &Path, bytes: &[u8], num: u32) -> Result<(), StorageError> {
        let header = SegmentHeader::decode(bytes).map_err(|error| match error {
            HeaderError::UnsupportedVersion(found) => StorageError::UnsupportedFormat {
                stream: self.stream,
                path: path.to_path_buf(),
                found,
                supported: SEGMENT_VERSION,
            },
            HeaderError::Malformed(reason) => self.unrecoverable(path, reason),
        })?;
        let expected = SegmentHeader {
            segment_num: num,
            stream: self.stream,
            first_offset: self.expected_first(),
        };
        if header != expected {
            let describe = |h: &SegmentHeader| {
                format!(
                    "stream {}, segment {}, first offset {}",
                    h.stream, h.segment_num, h.first_offset
                )
            };
            let reason = format!(
                "the segment header says {} where {} belongs",
                describe(&header),
                describe(&expected)
            );
            return Err(self.unrecoverable(path, reason));
        }
        Ok(())
    }

    fn target<'p>(&self, num: u32, path: &'p Path) -> ScanTarget<'p> {
        ScanTarget {
            stream: self.stream,
            num,
            path,
            first_offset: self.expected_first(),
            index_interval: self.config.index_interval,
        }
    }
}

/// Times recovery reads a metadata structure (manifest, index, segment header) that fails
/// to decode before it acts on the failure: a transient read error (a bit flipped on the way)
/// reads differently next time; real damage reads the same. See also `scan::DECODE_ATTEMPTS`.
const METADATA_READ_ATTEMPTS: usize = 3;

/// Runs `read` (a read and a decode) until the decode succeeds, at most
/// [`METADATA_READ_ATTEMPTS`] times; returns the last decode. I/O errors end it at once.
fn with_rereads<T, E>(
    mut read: impl FnMut() -> Result<Result<T, E>, StorageError>,
) -> Result<Result<T, E>, StorageError> {
    let mut attempt = 1;
    loop {
        let decoded = read()?;
        if decoded.is_ok() || attempt == METADATA_READ_ATTEMPTS {
            return Ok(decoded);
        }
        attempt += 1;
    }
}
