//! One stream's verified reads: where a read starts (the nearest restart record), what a read
//! or a full verification keeps of a [`walk`] of its files.
//!
//! Every read goes through [`walk`]: frames are decoded (length and CRC first) and hashed,
//! on several threads for long runs, then linked in order with a [`ChainCursor`], so a
//! changed, missing or reordered byte is an error naming the stream, offset, segment file and
//! byte position, never data.

use bytes::Bytes;
use kimberlite_types::Offset;

use super::fs::FileSystem;
use super::stream::StreamState;
use super::walk::{walk, Flow, Visit};
use crate::chain::{decode_at, ChainCursor};
use crate::error::StorageError;
use crate::parallel::VerifyPool;
use crate::record::FrameHint;
use crate::verify::{VerifiedFrame, VerifyReport, VerifyResume, VerifyStep};

impl<F: FileSystem> StreamState<F> {
    /// Where a verified read of `from` starts: the nearest restart record at or before it (found
    /// through the indexes) that is there, else the stream's first record.
    ///
    /// An index entry is only a hint: one that does not lead to the restart record it names
    /// (an index rewritten wrong with a valid CRC, through which every read would fail and name
    /// the intact segment as corrupt) is passed over for the one before it. Damage really at a
    /// restart record is then met by the walk from further back, and reported where it is.
    fn start_for(&self, from: u64) -> Result<(usize, u64, ChainCursor), StorageError> {
        let last = self.segments.len().saturating_sub(1);
        let segment_index = self
            .table
            .segment_of(from)
            .map_or(last, |segment| segment.segment_num as usize);
        let first = self.walk_start().0;
        for index in (first..=segment_index.max(first)).rev() {
            let Some(files) = self.segments.get(index) else {
                continue;
            };
            let mut before = Some(from);
            while let Some(entry) = before.and_then(|at| files.index.restart_at_or_before(at)) {
                before = entry.offset.checked_sub(1);
                let Ok(frame) = self.view(index).frame_at(entry.position) else {
                    continue;
                };
                let location = || self.location(index, entry.position);
                let Ok((record, _)) =
                    decode_at(self.id, Offset::new(entry.offset), &frame, location)
                else {
                    continue;
                };
                if record.is_restart() && record.offset().as_u64() == entry.offset {
                    let cursor = ChainCursor::resume(self.id, record.offset(), record.prev_hash());
                    return Ok((index, entry.position, cursor));
                }
            }
        }
        Ok(self.walk_start())
    }

    /// Verified payloads from `from` on, frames decoded and hashed on `pool`'s threads; see `StorageBackend::read_from` and [`walk`].
    pub fn read_from(
        &self,
        from: u64,
        max_bytes: u64,
        pool: &mut VerifyPool,
    ) -> Result<Vec<Bytes>, StorageError> {
        if from >= self.table.next_offset() && self.damage.is_none() {
            return Ok(Vec::new());
        }
        if from < self.first_offset().as_u64() {
            return Err(StorageError::Pruned {
                stream: self.id,
                offset: Offset::new(from),
                first_offset: self.first_offset(),
            });
        }
        let start = self.start_for(from)?;
        let records_left = self.table.next_offset().saturating_sub(from);
        pool.wake_ahead(max_bytes, records_left);
        let mut read = ReadVisit::new(from, max_bytes);
        walk(self, start, pool, &mut read)?;
        Ok(read.payloads)
    }

    /// Walks every record from the first, or from where `from` paused, checking every CRC
    /// and link, frames decoded and hashed on `pool`'s threads; pauses after `max_records`
    /// data records (`handle` names the storage handle in the pause point). See
    /// [`crate::verify::pieces`].
    pub fn verify(
        &self,
        pool: &mut VerifyPool,
        (handle, from, max_records): (u64, Option<VerifyResume>, u64),
        on_event: impl FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError> {
        let (start, restart_records, bytes) = match from {
            None => (self.walk_start(), 0, 0),
            Some(resume) => {
                resume.check_owner(handle, self.id)?;
                // Segments are never removed, so a pause point of this handle names one of
                // them; kept as an error rather than an out-of-bounds panic.
                if resume.segment_index >= self.segments.len() {
                    return Err(StorageError::ForeignResume {
                        stream: self.id,
                        paused_on: format!(
                            "segment {}, which this stream does not have",
                            resume.segment_index
                        ),
                    });
                }
                let start = (resume.segment_index, resume.position, resume.cursor);
                (start, resume.restart_records, resume.bytes)
            }
        };
        let mut counts = VerifyVisit {
            restart_records,
            bytes,
            records_left: max_records,
            on_event,
        };
        let end = walk(self, start, pool, &mut counts)?;
        let cursor = end.cursor;
        Ok(match end.stopped_before {
            Some((segment_index, position)) => VerifyStep::Paused(VerifyResume {
                handle,
                cursor,
                segment_index,
                position,
                restart_records: counts.restart_records,
                bytes: counts.bytes,
            }),
            None => VerifyStep::Done(VerifyReport {
                stream: self.id,
                records_checked: cursor.next_offset().as_u64() - self.first_offset().as_u64(),
                restart_records_checked: counts.restart_records,
                segments_checked: self.segments.len() - self.walk_start().0,
                bytes_checked: counts.bytes,
                head: cursor.prev_hash(),
                next_offset: cursor.next_offset(),
            }),
        })
    }
}

/// What `read_from` keeps of a walk: payloads from `from` on until `max_bytes`, then the one
/// more record whose link vouches for the last payload returned.
struct ReadVisit {
    from: u64,
    max_bytes: u64,
    payloads: Vec<Bytes>,
    payload_bytes: u64,
    budget_reached: bool,
    /// The same rule applied to unchecked headers, to plan the scan (see [`Visit::plan`]).
    planned_bytes: u64,
    planned_reached: bool,
}

impl ReadVisit {
    fn new(from: u64, max_bytes: u64) -> Self {
        Self {
            from,
            max_bytes,
            payloads: Vec::new(),
            payload_bytes: 0,
            budget_reached: false,
            planned_bytes: 0,
            planned_reached: false,
        }
    }
}

impl Visit for ReadVisit {
    fn plan(&mut self, hint: &FrameHint) -> bool {
        if self.planned_reached {
            // The frame just scanned is the one past the budget: its link is the last check.
            return false;
        }
        if !hint.is_restart && hint.offset.as_u64() >= self.from {
            self.planned_bytes = self.planned_bytes.saturating_add(hint.payload_len);
            self.planned_reached = self.planned_bytes >= self.max_bytes;
        }
        true
    }

    fn visit(&mut self, frame: VerifiedFrame) -> Flow {
        let record = frame.into_record();
        if self.budget_reached {
            // The link after the last record returned is checked: done.
            return Flow::Stop;
        }
        if !record.is_restart() && record.offset().as_u64() >= self.from {
            let payload = record.into_payload();
            self.payload_bytes += payload.len() as u64;
            self.payloads.push(payload);
            self.budget_reached = self.payload_bytes >= self.max_bytes;
        }
        Flow::Continue
    }
}

/// What `verify` counts of a walk over the whole stream, and where it hands each event.
struct VerifyVisit<E> {
    restart_records: u64,
    bytes: u64,
    /// Data records this piece may still visit before it pauses.
    records_left: u64,
    on_event: E,
}

impl<E: FnMut(Offset, &Bytes)> Visit for VerifyVisit<E> {
    fn plan(&mut self, _: &FrameHint) -> bool {
        true
    }

    fn visit(&mut self, frame: VerifiedFrame) -> Flow {
        let record = frame.record();
        self.bytes += frame.frame_len() as u64;
        if record.is_restart() {
            self.restart_records += 1;
            return Flow::Continue;
        }
        (self.on_event)(record.offset(), record.payload());
        self.records_left = self.records_left.saturating_sub(1);
        if self.records_left == 0 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}
