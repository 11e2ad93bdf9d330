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

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

use super::config::StorageConfig;
use super::fs::{EntryKind, FileHandle, FileSystem};
use super::index::SegmentIndex;
use super::manifest::{Manifest, ManifestSegment, MANIFEST_FILE};
use super::meta::write_manifest;
use super::prune_recovery::{complete_prune, read_cut_record};
use super::pruned::PrunePoint;
use super::quarantine::{keep_torn_tail, TORN_DIR};
use super::resume::{read_stored, resume_head, scan_active};
use super::scan::{OpenBatch, ScanEnd, ScanTarget};
use super::segment_file::{
    parse_segment_file_name, segment_path, HeaderError, SegmentBytes, SegmentHeader,
    SEGMENT_HEADER_LEN, SEGMENT_VERSION,
};
use super::stream::{io_error, Damage, SegmentFiles, StreamState};
use crate::error::{Location, RecordError, StorageError};
use crate::record::Record;
use crate::recovery_report::{RecoveryAction, RecoveryReport};
use crate::rotation::{SegmentMeta, SegmentTable};

const HEADER_LEN: u64 = SEGMENT_HEADER_LEN as u64;

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

    /// The chain hash of the previous segment's last data record (`None` before segment 1).
    fn previous_head(&self) -> Option<Result<ChainHash, String>> {
        if let Some(point) = &self.pruned {
            if self.segments.len() == point.first_segment as usize {
                // The first kept segment links to the cut.
                return Some(Ok(point.chain_hash));
            }
        }
        let files = self.segments.last()?;
        let map = files.map.clone().unwrap_or_default();
        let position = files.index.summary.last_data_position?;
        let frame = map.slice(
            usize::try_from(position)
                .unwrap_or(map.len())
                .min(map.len())..,
        );
        Some(
            Record::from_bytes(&frame)
                .map(|(record, _)| record.compute_hash())
                .map_err(|error| error.to_string()),
        )
    }

    /// Opens, scans and (per the decision table) repairs the active segment.
    fn open_active(
        mut self,
        num: u32,
        entry: Option<&ManifestSegment>,
    ) -> Result<StreamState<F>, StorageError> {
        let path = segment_path(self.dir, num);
        let mut file = self.fs.open(&path).map_err(|e| io_error(&path, e))?;
        let len = file.len_bytes().map_err(|e| io_error(&path, e))?;
        let first_offset = self.expected_first();
        if let Some(entry) = entry {
            if entry.first_offset != first_offset {
                let reason = "manifest offset range disagrees with the files".to_owned();
                return Err(self.unrecoverable(&path, reason));
            }
        }
        let mut header = vec![0u8; usize::try_from(len.min(HEADER_LEN)).unwrap_or(0)];
        let checked = with_rereads(|| {
            file.read_exact_at(&mut header, 0)
                .map_err(|e| io_error(&path, e))?;
            Ok(self.check_header(&path, &header, num))
        })?;
        if let Err(error) = checked {
            // Only a segment the manifest does not list yet can have an unfinished header (a
            // crash while rotation created it): a listed one was created with its header
            // synced before the manifest was written, so a bad or short header there is
            // damage, whatever the manifest says the segment holds. (The manifest says "no
            // records" of every active segment, so trusting it here would let a segment file
            // cut to nothing lose all its records and still verify intact.)
            if len > HEADER_LEN || entry.is_some() {
                return Err(error);
            }
            let fresh = SegmentHeader {
                segment_num: num,
                stream: self.stream,
                first_offset,
            };
            let io = |e| io_error(&path, e);
            file.set_len(0).map_err(io)?;
            file.write_all_at(&fresh.encode(), 0).map_err(io)?;
            file.sync_data().map_err(io)?;
            let stream = self.stream;
            let rewritten = path.clone();
            self.report
                .actions
                .push(RecoveryAction::SegmentHeaderRewritten {
                    stream,
                    file: rewritten,
                });
        }
        let len = file.len_bytes().map_err(|e| io_error(&path, e))?;
        let previous = self.previous_head();
        let target = self.target(num, &path);
        let stored = read_stored(self.fs, self.dir, &target).unwrap_or_else(|entry| {
            // Rebuilt by the scan below, written at the next flush (over the entry, never
            // through it).
            self.report.actions.push(RecoveryAction::IndexRebuilt {
                stream: self.stream,
                file: entry.path.clone(),
                reason: entry.to_string(),
            });
            None
        });
        let mut bytes = SegmentBytes::file(&file, len);
        let mut scan = scan_active(&target, &mut bytes, stored.as_ref(), previous.as_ref())?;
        self.report.records_scanned += scan.records;
        if let Some(error) = &scan.chain_break {
            // Row 9b: reported, left in place; reads that reach it fail on it.
            self.report.actions.push(RecoveryAction::CorruptionFound {
                stream: self.stream,
                error: error.to_string(),
            });
        }
        let watermark = entry.map_or(HEADER_LEN, |entry| entry.file_size_bytes);
        let open_batch = scan.open_batch.as_ref().map(OpenBatch::position);
        if open_batch.is_some_and(|start| start >= watermark) {
            // Row 10: the batch the segment ends in is cut whole, with any torn write after it.
            if let (Some(start), Some(reason)) = (open_batch, scan.drop_open_batch()) {
                self.cut_tail(&mut file, &path, num, (start, len), &reason)?;
            }
        }
        let good_len = scan.index.summary.len_bytes;
        let location = Location {
            segment: num,
            position: good_len,
            file: Some(path.clone()),
        };
        let missing = |location| StorageError::MissingRecords {
            stream: self.stream,
            offset: Offset::new(scan.index.summary.next_offset),
            location,
        };
        let corrupt = |location, source| StorageError::CorruptRecord {
            stream: self.stream,
            offset: Offset::new(scan.index.summary.next_offset),
            location,
            source,
        };
        let error = match scan.end {
            ScanEnd::Corrupt(error) => Some(error),
            ScanEnd::Clean if good_len < watermark => Some(missing(location)),
            ScanEnd::Torn { position, reason } if position < watermark => {
                Some(corrupt(location, reason))
            }
            // Row 10': a batch left open across the watermark, which only ever lies between
            // batches.
            _ if open_batch.is_some() => {
                let reason = scan.open_batch.take().map(|open| open.reason);
                reason.map(|reason| corrupt(location, reason))
            }
            ScanEnd::Clean => None,
            ScanEnd::Torn { position, reason } => {
                self.cut_tail(&mut file, &path, num, (position, len), &reason)?;
                None
            }
        };
        let damage = error.and_then(|error| {
            let stream = self.stream;
            self.report.actions.push(RecoveryAction::CorruptionFound {
                stream,
                error: error.to_string(),
            });
            Damage::from_error(&error, len)
        });
        let head = match (scan.last_hash, previous) {
            (Some(hash), _) => Some(hash),
            (None, Some(Ok(hash))) => Some(hash),
            _ => None,
        };
        // What the scan saw becomes durable before anything is built on it: the previous
        // process may have left unsynced writes or truncations (say, the cut-back of a failed
        // batch) in the page cache, and a later crash must not revert the state open reports.
        file.sync_data().map_err(|e| io_error(&path, e))?;
        // The active segment's index is derived from the scan; the file is rewritten at the
        // next `flush_indexes` or rotation unless it already says exactly this, resume point
        // included (everything is synced now, so one may be given).
        let chain_break = scan.chain_break.is_some();
        let len_bytes = scan.index.summary.len_bytes;
        let resume = resume_head(&scan.index, head, len_bytes, chain_break);
        let index_dirty = stored.is_none_or(|s| s.index != scan.index || s.head != resume);
        self.finish(Active {
            num,
            path,
            file,
            index: scan.index,
            head,
            damage,
            manifest_len: watermark,
            index_dirty,
            chain_break,
        })
    }

    /// Keeps bytes `from..to` of the active segment `num` in `torn/`, cuts the file back to
    /// `from` and reports it (rows 3–5 and 10).
    fn cut_tail(
        &mut self,
        file: &mut F::File,
        path: &Path,
        num: u32,
        (from, to): (u64, u64),
        reason: &RecordError,
    ) -> Result<(), StorageError> {
        let io = |e| io_error(path, e);
        let kept_in = keep_torn_tail(self.fs, self.dir, num, file, from, to)
            .map_err(|e| io_error(&self.dir.join(TORN_DIR), e))?;
        file.set_len(from).map_err(io)?;
        file.sync_data().map_err(io)?;
        self.report.actions.push(RecoveryAction::TornTailTruncated {
            stream: self.stream,
            file: path.to_path_buf(),
            from_len: to,
            to_len: from,
            reason: reason.to_string(),
            kept_in,
        });
        Ok(())
    }

    fn finish(mut self, active: Active<F>) -> Result<StreamState<F>, StorageError> {
        let summary = active.index.summary;
        self.metas.push(SegmentMeta {
            segment_num: active.num,
            first_offset: summary.first_offset,
            next_offset: summary.next_offset,
            logical_size_bytes: summary.logical_size_bytes,
        });
        self.segments.push(SegmentFiles {
            num: active.num,
            path: active.path,
            index: active.index,
            map: None,
        });
        let table =
            SegmentTable::from_segments(self.metas).ok_or_else(|| StorageError::Unrecoverable {
                stream: self.stream,
                path: self.dir.to_path_buf(),
                reason: "segment offset ranges are inconsistent".to_owned(),
            })?;
        Ok(StreamState {
            id: self.stream,
            dir: self.dir.to_path_buf(),
            table,
            segments: self.segments,
            active: active.file,
            active_map: OnceLock::new(),
            head: active.head,
            damage: active.damage,
            synced_len: summary.len_bytes,
            allocated_to: 0,
            manifest_len: active.manifest_len,
            index_dirty: active.index_dirty,
            chain_break: active.chain_break,
            pruned: self.pruned,
        })
    }
}

/// What opening the active segment found, for [`Opener::finish`].
struct Active<F: FileSystem> {
    num: u32,
    path: PathBuf,
    file: F::File,
    index: SegmentIndex,
    head: Option<ChainHash>,
    damage: Option<Damage>,
    manifest_len: u64,
    index_dirty: bool,
    chain_break: bool,
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
