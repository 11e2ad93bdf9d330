//! Retention: a stream's oldest whole segments dropped, and the cut recorded so that every
//! walk starts from it (`docs/INTERNALS.md`, "Retention").
//!
//! # Order of a prune, and what a crash at each step leaves
//!
//! | step | what | a crash before the next step leaves | open does |
//! |---|---|---|---|
//! | 1 | verify the segments to drop (chain from the current start to the cut) | nothing written | opens as before: not pruned |
//! | 2 | write `pruned.json` (temp, fsync, rename, fsync dir): the commit point | a cut record, every segment file | deletes the files below the cut: pruned |
//! | 3 | delete the files below the cut (segments and indexes), fsync the directory | a cut record, some files below the cut | deletes the rest: pruned |
//!
//! A crash during step 2 leaves `pruned.json.tmp` at most (removed on open, as every temp
//! file) or the old cut record: not pruned (or pruned only as far as before). Before open
//! deletes anything below a cut it checks that the cut record's chain hash is the hash of the
//! last record of the segment just below the cut, when that file is still there: a cut
//! record that does not fit the files leaves the stream unopened instead.

use std::sync::PoisonError;

use kimberlite_types::{Offset, StreamId};

use super::fs::FileSystem;
use super::manifest::ManifestSegment;
use super::meta::manifest_of;
use super::prune_recovery::delete_segments;
use super::pruned::{PrunePoint, PrunedRecord, PRUNED_FILE};
use super::storage::Storage;
use super::stream::{io_error, SegmentFiles};
use crate::error::StorageError;
use crate::verify::VerifyStep;

impl<F: FileSystem> Storage<F> {
    /// Where retention cut `stream`, if it did.
    #[must_use]
    pub fn prune_point(&self, stream: StreamId) -> Option<PrunePoint> {
        self.streams.get(&stream)?.pruned.clone()
    }

    /// The offset a prune of `stream` before `before` cuts at: the first offset of the segment
    /// holding `before` (of the active segment when `before` is the stream's next offset),
    /// so that nothing at or after `before` is dropped. Equal to the stream's first offset
    /// when no whole segment lies below `before`.
    ///
    /// # Errors
    ///
    /// [`StorageError::PruneRefused`] for an unknown stream or `before` past its next offset.
    pub fn prune_boundary(&self, stream: StreamId, before: Offset) -> Result<Offset, StorageError> {
        let state = self
            .readable(stream)?
            .ok_or_else(|| refused(stream, "no such stream"))?;
        let next = state.table.next_offset();
        if before.as_u64() > next {
            return Err(refused(
                stream,
                &format!("offset {before} is past the stream's next offset {next}"),
            ));
        }
        let boundary = state
            .table
            .segments()
            .iter()
            .rev()
            .find(|segment| segment.first_offset <= before.as_u64())
            .map_or(0, |segment| segment.first_offset);
        Ok(Offset::new(boundary.max(state.first_offset().as_u64())))
    }

    /// Drops the segments of `stream` below `cut` (a boundary [`Storage::prune_boundary`]
    /// gave), after verifying them, and records the cut with `tree_frontier` and
    /// `checkpoint_size` (kept for the store above) in `pruned.json`. See the module docs for
    /// the order. A failure after the commit point poisons the store: the next open
    /// completes the prune.
    ///
    /// # Errors
    ///
    /// [`StorageError::PruneRefused`] (nothing written) for an unknown or damaged stream, a
    /// cut that is not a segment boundary above the current one; the corruption a walk of the
    /// dropped segments finds (nothing written); I/O errors.
    pub fn prune(
        &mut self,
        stream: StreamId,
        cut: Offset,
        tree_frontier: Vec<[u8; 32]>,
        checkpoint_size: u64,
    ) -> Result<PrunePoint, StorageError> {
        self.check_poisoned()?;
        let (point, dropped, first_kept_before) = self.plan_prune(stream, cut)?;
        let point = PrunePoint {
            tree_frontier,
            checkpoint_size,
            ..point
        };
        let record = PrunedRecord::new(stream, &point, dropped.clone());
        let Some(state) = self.streams.get_mut(&stream) else {
            return Err(refused(stream, "no such stream"));
        };
        let dir = state.dir.clone();
        let committed = record
            .write_atomic(&self.fs, &dir)
            .map_err(|source| io_error(&dir.join(PRUNED_FILE), source));
        self.poison_on_error(committed)?;
        let Some(state) = self.streams.get_mut(&stream) else {
            return Err(refused(stream, "no such stream"));
        };
        for entry in dropped.iter().skip(first_kept_before as usize) {
            if let Some(files) = state.segments.get_mut(entry.segment_num as usize) {
                // Drops the map of the file about to be deleted.
                *files = SegmentFiles::pruned(&dir, entry);
            }
        }
        state.pruned = Some(point.clone());
        let nums: Vec<u32> = (first_kept_before..point.first_segment).collect();
        crate::crash_point::crash_point("retain:committed");
        let deleted = delete_segments(&self.fs, &dir, &nums);
        self.poison_on_error(deleted)?;
        Ok(point)
    }

    /// Checks a prune of `stream` at `cut` and walks what it drops: the point (without the
    /// tree's part), the dropped segments' manifest entries, and the first segment kept
    /// before this prune.
    fn plan_prune(
        &self,
        stream: StreamId,
        cut: Offset,
    ) -> Result<(PrunePoint, Vec<ManifestSegment>, u32), StorageError> {
        let state = self
            .readable(stream)?
            .ok_or_else(|| refused(stream, "no such stream"))?;
        if let Some(damage) = &state.damage {
            let reason = format!("it is damaged: {}", damage.to_error(stream));
            return Err(refused(stream, &reason));
        }
        let first_kept = state.walk_start().0;
        let first_segment = state
            .table
            .segments()
            .iter()
            .position(|segment| segment.first_offset == cut.as_u64())
            .filter(|&index| index > first_kept)
            .ok_or_else(|| {
                let reason = format!(
                    "offset {cut} is not the first offset of a segment above the stream's \
                     first kept segment (the stream holds offsets from {})",
                    state.first_offset()
                );
                refused(stream, &reason)
            })?;
        let records = cut.as_u64() - state.first_offset().as_u64();
        let step = {
            let mut pool = self
                .verify_pool
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.verify(&mut pool, (self.handle, None, records), |_, _| {})?
        };
        let (next, head) = match step {
            VerifyStep::Paused(resume) => (resume.cursor.next_offset(), resume.cursor.prev_hash()),
            VerifyStep::Done(report) => (report.next_offset, report.head),
        };
        let chain_hash = head
            .filter(|_| next == cut)
            .ok_or_else(|| refused(stream, &format!("the walk did not end at offset {cut}")))?;
        let manifest = manifest_of(state);
        let dropped = manifest
            .segments
            .get(..first_segment)
            .map(<[ManifestSegment]>::to_vec)
            .unwrap_or_default();
        let point = PrunePoint {
            first_segment: u32::try_from(first_segment).unwrap_or(u32::MAX),
            first_offset: cut,
            chain_hash,
            tree_frontier: Vec::new(),
            checkpoint_size: 0,
        };
        Ok((
            point,
            dropped,
            u32::try_from(first_kept).unwrap_or(u32::MAX),
        ))
    }
}

fn refused(stream: StreamId, reason: &str) -> StorageError {
    StorageError::PruneRefused {
        stream,
        reason: reason.to_owned(),
    }
}
