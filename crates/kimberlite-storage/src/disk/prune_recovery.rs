//! Opening a stream that holds a cut record (`pruned.json`): the record read and checked, and
//! a prune interrupted after its commit point completed (module `prune` has the order and
//! the decision table).

use std::path::Path;

use kimberlite_types::StreamId;

use super::fs::FileSystem;
use super::index::index_file_name;
use super::manifest::ManifestSegment;
use super::pruned::{PrunePoint, PrunedRecord, PRUNED_FILE};
use super::scan::{scan_segment, ScanEnd, ScanTarget};
use super::segment_file::{segment_path, SegmentBytes};
use super::stream::io_error;
use crate::error::StorageError;
use crate::recovery_report::{RecoveryAction, RecoveryReport};

/// Deletes segments `nums` (file and index) in `dir`, then syncs the directory. A file
/// already gone is not an error (a prune completed twice).
pub(super) fn delete_segments<F: FileSystem>(
    fs: &F,
    dir: &Path,
    nums: &[u32],
) -> Result<(), StorageError> {
    for (deleted, &num) in nums.iter().enumerate() {
        if deleted == 1 {
            crate::crash_point::crash_point("retain:first-segment-deleted");
        }
        for path in [segment_path(dir, num), dir.join(index_file_name(num))] {
            match fs.remove_file(&path) {
                Ok(()) => {}
                Err(source) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error(&path, source)),
            }
        }
    }
    fs.sync_dir(dir).map_err(|source| io_error(dir, source))
}

/// The stream's cut record, if `names` (its directory's entries) holds one: the dropped
/// segments' entries and the point. A record that does not decode leaves the stream unopened.
pub(super) fn read_cut_record<F: FileSystem>(
    fs: &F,
    dir: &Path,
    stream: StreamId,
    names: &[String],
) -> Result<Option<(Vec<ManifestSegment>, PrunePoint)>, StorageError> {
    if !names.iter().any(|name| name == PRUNED_FILE) {
        return Ok(None);
    }
    let path = dir.join(PRUNED_FILE);
    let bytes = fs.read(&path).map_err(|source| io_error(&path, source))?;
    match PrunedRecord::decode(&bytes, stream) {
        Ok((record, point)) => Ok(Some((record.segments, point))),
        Err(reason) => Err(StorageError::Unrecoverable {
            stream,
            path,
            reason,
        }),
    }
}

/// Completes a prune interrupted after its commit point: deletes the segment files among
/// `numbers` below the cut, once the last one's last record is checked to hash to the cut's
/// chain hash; returns the numbers kept.
pub(super) fn complete_prune<F: FileSystem>(
    fs: &F,
    dir: &Path,
    stream: StreamId,
    point: &PrunePoint,
    numbers: Vec<u32>,
    report: &mut RecoveryReport,
) -> Result<Vec<u32>, StorageError> {
    let (below, kept): (Vec<u32>, Vec<u32>) =
        numbers.into_iter().partition(|n| *n < point.first_segment);
    if below.is_empty() {
        return Ok(kept);
    }
    if let Some(last) = below.last().filter(|n| **n + 1 == point.first_segment) {
        check_cut_hash(fs, dir, stream, point, *last)?;
    }
    delete_segments(fs, dir, &below)?;
    report.actions.push(RecoveryAction::PruneCompleted {
        stream,
        segments: below,
    });
    Ok(kept)
}

/// Checks that segment `num`, the last below the cut, ends with the record whose chain hash
/// the cut record holds.
fn check_cut_hash<F: FileSystem>(
    fs: &F,
    dir: &Path,
    stream: StreamId,
    point: &PrunePoint,
    num: u32,
) -> Result<(), StorageError> {
    let path = segment_path(dir, num);
    let map = fs.map_readonly(&path).map_err(|e| io_error(&path, e))?;
    let header = super::segment_file::SegmentHeader::decode(&map).ok();
    let target = ScanTarget {
        stream,
        num,
        path: &path,
        first_offset: header.map_or(0, |header| header.first_offset),
        index_interval: u64::MAX,
    };
    let mut view: SegmentBytes<'_, F::File> = SegmentBytes::Mapped(map);
    let scan = scan_segment(&target, &mut view, None)?;
    let fits = matches!(scan.end, ScanEnd::Clean)
        && scan.index.summary.next_offset == point.first_offset.as_u64()
        && scan.last_hash == Some(point.chain_hash);
    if fits {
        return Ok(());
    }
    Err(StorageError::Unrecoverable {
        stream,
        path: dir.join(PRUNED_FILE),
        reason: format!(
            "the cut record's chain hash is not the hash of the last record of {} (offset {}): \
             the prune it records is not completed",
            path.display(),
            point.first_offset.as_u64().saturating_sub(1)
        ),
    })
}
