//! Opening the *active* (last) segment of a stream: the scan to its end, the parent module's
//! decision table for its tail applied (truncate a torn write, report damage), and the
//! stream's state assembled from all its segments. Apart from `completed` because the active
//! segment is the one whose bytes are read in full and the only one recovery cuts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kimberlite_crypto::ChainHash;
use kimberlite_types::Offset;

use super::{with_rereads, Opener, HEADER_LEN};
use crate::disk::fs::{FileHandle, FileSystem};
use crate::disk::index::SegmentIndex;
use crate::disk::manifest::ManifestSegment;
use crate::disk::quarantine::{keep_torn_tail, TORN_DIR};
use crate::disk::resume::{read_stored, resume_head, scan_active};
use crate::disk::scan::{OpenBatch, ScanEnd};
use crate::disk::segment_file::{segment_path, SegmentBytes, SegmentHeader};
use crate::disk::stream::{io_error, Damage, SegmentFiles, StreamState};
use crate::error::{Location, RecordError, StorageError};
use crate::record::Record;
use crate::recovery_report::RecoveryAction;
use crate::rotation::{SegmentMeta, SegmentTable};

impl<F: FileSystem> Opener<'_, F> {
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
    pub(super) fn open_active(
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
