//! Segment rotation bookkeeping shared by every backend.
//!
//! A stream's records are split into numbered segments. Both `Storage` (real files) and
//! `MemoryStorage` (notional segments) drive the same [`SegmentTable`], so the same appends
//! give the same `segment_count` and `completed_segments` on both by construction.
//!
//! # The rotation rule
//!
//! A segment's *logical size* is the sum, over its data records, of
//! [`logical_record_size`]: the record's frame length *as if stored uncompressed*. Rotation
//! happens after the batch that makes the active segment's logical size reach
//! `max_segment_size` (the storage contract's rule: checked once per batch, so a batch never
//! straddles two segments). The new segment is empty and starts at the stream's next offset.
//!
//! Logical rather than physical size keeps compression, restart records and file headers,
//! which exist only on disk, from moving segment boundaries: a segment file may therefore be
//! somewhat smaller (compression) or larger (restart records, header) than `max_segment_size`.

use crate::record::RECORD_OVERHEAD;

/// Size a data record counts toward its segment's rotation threshold.
#[must_use]
pub fn logical_record_size(payload_len: usize) -> u64 {
    (RECORD_OVERHEAD + payload_len) as u64
}

/// One segment's place in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Segment number, 0-based, dense.
    pub segment_num: u32,
    /// First offset stored in the segment.
    pub first_offset: u64,
    /// One past the last offset stored (equal to `first_offset` while empty).
    pub next_offset: u64,
    /// Logical size in bytes (see the module docs).
    pub logical_size_bytes: u64,
}

impl SegmentMeta {
    fn empty(segment_num: u32, first_offset: u64) -> Self {
        Self {
            segment_num,
            first_offset,
            next_offset: first_offset,
            logical_size_bytes: 0,
        }
    }

    /// Number of data records in the segment.
    #[must_use]
    pub fn record_count(&self) -> u64 {
        self.next_offset - self.first_offset
    }
}

/// The ordered segments of one stream; the last one is active (written to).
///
/// Invariants: never empty; segment numbers are `0..len`; each segment starts where the
/// previous one ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentTable {
    segments: Vec<SegmentMeta>,
}

impl Default for SegmentTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentTable {
    /// A stream's table before its first record: one empty segment, number 0.
    #[must_use]
    pub fn new() -> Self {
        Self {
            segments: vec![SegmentMeta::empty(0, 0)],
        }
    }

    /// A table rebuilt from its segments (as recovered from disk); `None` unless they satisfy
    /// the invariants: non-empty, numbered `0..len`, each starting where the previous ends.
    #[must_use]
    pub fn from_segments(segments: Vec<SegmentMeta>) -> Option<Self> {
        let mut expected_first = 0u64;
        for (index, segment) in segments.iter().enumerate() {
            let numbered = u64::from(segment.segment_num) == index as u64;
            if !numbered
                || segment.first_offset != expected_first
                || segment.next_offset < segment.first_offset
            {
                return None;
            }
            expected_first = segment.next_offset;
        }
        (!segments.is_empty()).then_some(Self { segments })
    }

    /// All segments, oldest first.
    #[must_use]
    pub fn segments(&self) -> &[SegmentMeta] {
        &self.segments
    }

    /// The segment being written.
    #[must_use]
    pub fn active(&self) -> &SegmentMeta {
        self.segments
            .last()
            .expect("SegmentTable invariant: at least one segment")
    }

    fn active_mut(&mut self) -> &mut SegmentMeta {
        self.segments
            .last_mut()
            .expect("SegmentTable invariant: at least one segment")
    }

    /// The stream's next offset.
    #[must_use]
    pub fn next_offset(&self) -> u64 {
        self.active().next_offset
    }

    /// Numbers of the segments that are complete (every one but the active one).
    #[must_use]
    pub fn completed_segments(&self) -> Vec<u32> {
        let active = self.active().segment_num;
        self.segments
            .iter()
            .map(|segment| segment.segment_num)
            .filter(|&num| num != active)
            .collect()
    }

    /// The segment holding `offset`, if any record at that offset exists.
    #[must_use]
    pub fn segment_of(&self, offset: u64) -> Option<&SegmentMeta> {
        if offset >= self.next_offset() {
            return None;
        }
        let index = self
            .segments
            .partition_point(|segment| segment.next_offset <= offset);
        self.segments.get(index)
    }

    /// Records one appended data record of `payload_len` bytes in the active segment.
    pub fn record_appended(&mut self, payload_len: usize) {
        let active = self.active_mut();
        active.next_offset += 1;
        active.logical_size_bytes += logical_record_size(payload_len);
    }

    /// Applies the rotation rule at the end of a batch; returns the new segment's number when
    /// it rotated.
    ///
    /// # Panics
    ///
    /// Panics if the segment number would pass `u32::MAX` (4 billion segments of a stream).
    pub fn end_batch(&mut self, max_segment_size: u64) -> Option<u32> {
        let active = *self.active();
        if active.logical_size_bytes < max_segment_size {
            return None;
        }
        let segment_num = active
            .segment_num
            .checked_add(1)
            .expect("segment number overflow");
        self.segments
            .push(SegmentMeta::empty(segment_num, active.next_offset));
        Some(segment_num)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_after_the_batch_that_reaches_the_limit() {
        let record = logical_record_size(10);
        let mut table = SegmentTable::new();
        table.record_appended(10);
        assert_eq!(table.end_batch(2 * record), None);
        table.record_appended(10);
        table.record_appended(10);
        assert_eq!(table.end_batch(2 * record), Some(1));
        assert_eq!(table.segments().len(), 2);
        assert_eq!(table.completed_segments(), vec![0]);
        assert_eq!(table.active().first_offset, 3);
        assert_eq!(table.active().record_count(), 0);
        assert_eq!(table.next_offset(), 3);
        assert_eq!(table.segment_of(2).map(|s| s.segment_num), Some(0));
        assert_eq!(table.segment_of(3), None);
        table.record_appended(0);
        assert_eq!(table.segment_of(3).map(|s| s.segment_num), Some(1));
    }

    #[test]
    fn a_segment_landing_exactly_on_the_limit_rotates_one_byte_under_does_not() {
        let record = logical_record_size(10);
        for (limit, rotates) in [
            (2 * record - 1, true),
            (2 * record, true),
            (2 * record + 1, false),
        ] {
            let mut table = SegmentTable::new();
            table.record_appended(10);
            table.record_appended(10);
            assert_eq!(table.active().logical_size_bytes, 2 * record);
            let rotated = table.end_batch(limit);
            assert_eq!(rotated.is_some(), rotates, "limit {limit}");
            assert_eq!(table.segments().len(), if rotates { 2 } else { 1 });
        }
    }

    #[test]
    fn from_segments_checks_the_invariants() {
        let mut table = SegmentTable::new();
        table.record_appended(1);
        let _ = table.end_batch(0);
        table.record_appended(1);
        let rebuilt = SegmentTable::from_segments(table.segments().to_vec());
        assert_eq!(rebuilt.as_ref(), Some(&table));
        assert_eq!(SegmentTable::from_segments(Vec::new()), None);
        let mut gap = table.segments().to_vec();
        gap[1].first_offset += 1;
        assert_eq!(SegmentTable::from_segments(gap), None);
        let mut renumbered = table.segments().to_vec();
        renumbered[1].segment_num = 5;
        assert_eq!(SegmentTable::from_segments(renumbered), None);
    }

    #[test]
    fn zero_limit_rotates_after_every_batch() {
        let mut table = SegmentTable::new();
        for _ in 0..3 {
            table.record_appended(1);
            assert!(table.end_batch(0).is_some());
        }
        assert_eq!(table.completed_segments(), vec![0, 1, 2]);
        assert_eq!(table.segment_of(1).map(|s| s.segment_num), Some(1));
    }

    #[test]
    #[should_panic(expected = "segment number overflow")]
    fn segment_number_overflow_panics() {
        let mut table = SegmentTable {
            segments: vec![SegmentMeta::empty(u32::MAX, 0)],
        };
        table.record_appended(1);
        let _ = table.end_batch(0);
    }
}
