//! Opening a *completed* segment (the "What is trusted" rules of the parent module for
//! segments before the active one): header and length checked against the manifest, the
//! index used when it matches, else rebuilt by a scan that must come out clean unless a
//! manifest vouches for the segment.

use std::path::Path;

use kimberlite_types::Offset;

use super::{with_rereads, Opener};
use crate::disk::fs::FileSystem;
use crate::disk::index::{index_file_name, SegmentIndex};
use crate::disk::manifest::ManifestSegment;
use crate::disk::meta::write_index;
use crate::disk::scan::{scan_segment, ScanEnd};
use crate::disk::segment_file::{segment_path, SegmentBytes};
use crate::disk::stream::{io_error, SegmentFiles};
use crate::error::{Location, StorageError};
use crate::recovery_report::RecoveryAction;
use crate::rotation::SegmentMeta;

impl<F: FileSystem> Opener<'_, F> {
    /// Segment `entry.segment_num`, dropped by retention: its entry from the cut record.
    pub(super) fn push_pruned(&mut self, entry: &ManifestSegment) {
        self.metas.push(SegmentMeta {
            segment_num: entry.segment_num,
            first_offset: entry.first_offset,
            next_offset: entry.next_offset,
            logical_size_bytes: entry.logical_size_bytes,
        });
        self.segments.push(SegmentFiles::pruned(self.dir, entry));
    }

    /// Opens completed segment `num`; `entry` is its manifest entry when one vouches for it.
    pub(super) fn open_completed(
        &mut self,
        num: u32,
        entry: Option<&ManifestSegment>,
    ) -> Result<(), StorageError> {
        let path = segment_path(self.dir, num);
        let mut map = bytes::Bytes::new();
        let header = with_rereads(|| {
            map = self
                .fs
                .map_readonly(&path)
                .map_err(|e| io_error(&path, e))?;
            Ok(self.check_header(&path, &map, num))
        })?;
        header?;
        let len = map.len() as u64;
        if let Some(entry) = entry {
            if entry.file_size_bytes != len {
                let reason = format!(
                    "file is {len} bytes, manifest says {}",
                    entry.file_size_bytes
                );
                return Err(self.unrecoverable(&path, reason));
            }
        }
        let index_path = self.dir.join(index_file_name(num));
        let stored = with_rereads(|| {
            Ok(match self.fs.read(&index_path) {
                Ok(bytes) => SegmentIndex::decode(&bytes, self.stream, num, len),
                Err(error) => Err(format!("index unreadable: {error}")),
            })
        })?;
        let stored = stored.and_then(|index| match entry {
            Some(entry) if !summary_matches(&index, entry) => {
                Err("index summary disagrees with the manifest".to_owned())
            }
            _ => Ok(index),
        });
        let index = match (stored, entry) {
            (Ok(index), Some(_)) => index,
            (Ok(index), None) => self.rebuild_completed(num, &path, &map, None, Ok(index))?,
            (Err(reason), entry) => self.rebuild_completed(num, &path, &map, entry, Err(reason))?,
        };
        let meta = SegmentMeta {
            segment_num: num,
            first_offset: self.expected_first(),
            next_offset: entry.map_or(index.summary.next_offset, |e| e.next_offset),
            logical_size_bytes: entry
                .map_or(index.summary.logical_size_bytes, |e| e.logical_size_bytes),
        };
        self.metas.push(meta);
        self.segments.push(SegmentFiles {
            num,
            path,
            index,
            map: Some(map),
        });
        Ok(())
    }

    /// Rebuilds a completed segment's index by a scan (`stored` is the index file as read, or
    /// why it is unusable); with no manifest `entry`, the scan must also find it clean.
    fn rebuild_completed(
        &mut self,
        num: u32,
        path: &Path,
        map: &bytes::Bytes,
        entry: Option<&ManifestSegment>,
        stored: Result<SegmentIndex, String>,
    ) -> Result<SegmentIndex, StorageError> {
        let target = self.target(num, path);
        let mut view: SegmentBytes<'_, F::File> = SegmentBytes::Mapped(map.clone());
        let scan = scan_segment(&target, &mut view, None)?;
        self.report.records_scanned += scan.records;
        let problem = match scan.end {
            ScanEnd::Clean => None,
            ScanEnd::Torn { position, reason } => Some(StorageError::CorruptRecord {
                stream: self.stream,
                offset: Offset::new(scan.index.summary.next_offset),
                location: Location {
                    segment: num,
                    position,
                    file: Some(path.to_path_buf()),
                },
                source: reason,
            }),
            ScanEnd::Corrupt(error) => Some(error),
        };
        // A batch never spans two segments: one left open in a completed segment is damage.
        let problem = problem.or_else(|| {
            let open = scan.open_batch.as_ref()?;
            Some(StorageError::CorruptRecord {
                stream: self.stream,
                offset: Offset::new(scan.index.summary.next_offset),
                location: Location {
                    segment: num,
                    position: open.position(),
                    file: Some(path.to_path_buf()),
                },
                source: open.reason.clone(),
            })
        });
        match (problem, entry) {
            (None, Some(entry)) if !summary_matches(&scan.index, entry) => {
                let reason = "segment content disagrees with the manifest".to_owned();
                Err(self.unrecoverable(path, reason))
            }
            (None, _) if stored.as_ref().ok() == Some(&scan.index) => Ok(scan.index),
            (None, _) => {
                let reason = stored.err().unwrap_or_else(|| "stale index".to_owned());
                let file = write_index(self.fs, self.dir, self.stream, num, &scan.index, None)
                    .map_err(|e| io_error(path, e))?;
                let stream = self.stream;
                self.report.actions.push(RecoveryAction::IndexRebuilt {
                    stream,
                    file,
                    reason,
                });
                Ok(scan.index)
            }
            (Some(error), Some(_)) => {
                let stream = self.stream;
                let error = error.to_string();
                self.report
                    .actions
                    .push(RecoveryAction::CorruptionFound { stream, error });
                Ok(scan.index)
            }
            (Some(error), None) => Err(self.unrecoverable(
                path,
                format!(
                    "no manifest vouches for this completed segment and it is damaged: {error}"
                ),
            )),
        }
    }
}

fn summary_matches(index: &SegmentIndex, entry: &ManifestSegment) -> bool {
    let summary = &index.summary;
    summary.first_offset == entry.first_offset
        && summary.next_offset == entry.next_offset
        && summary.logical_size_bytes == entry.logical_size_bytes
        && summary.len_bytes == entry.file_size_bytes
}
