//! `Storage`'s full verification of a stream, whole or in pieces ([`crate::verify::pieces`]).

use std::sync::PoisonError;

use bytes::Bytes;
use kimberlite_types::{Offset, StreamId};

use super::fs::FileSystem;
use super::storage::Storage;
use crate::error::StorageError;
use crate::verify::VerifyReport;
use crate::verify::{VerifyResume, VerifyStep};

impl<F: FileSystem> Storage<F> {
    /// Walks every record of `stream` from the first, checking every CRC and link (and that
    /// the last one is the head held in memory). An unknown stream verifies as empty.
    pub fn verify_stream(&mut self, stream: StreamId) -> Result<VerifyReport, StorageError> {
        self.verify_stream_with(stream, |_, _| {})
    }

    /// [`Storage::verify_stream`], handing each event to `on_event` (offset and original
    /// payload, in offset order) in the same walk: for checks that need every event (a
    /// Merkle tree recomputed from the log) without reading the stream a second time. An
    /// event is handed over once its frame is decoded, checksummed, hashed and linked to the
    /// one before; if the walk then fails further on, what was handed over is still intact,
    /// but the stream is not, so callers must act on the result before on what they gathered.
    pub fn verify_stream_with(
        &self,
        stream: StreamId,
        on_event: impl FnMut(Offset, &Bytes),
    ) -> Result<VerifyReport, StorageError> {
        self.verify_stream_piece(stream, None, u64::MAX, on_event)?
            .unbounded_report(stream)
    }

    /// One piece of [`Storage::verify_stream_with`]: from the first record (`from` = `None`)
    /// or from where an earlier piece of this handle paused, at most `max_records` data
    /// records (at least one), then [`VerifyStep::Paused`] with where to go on, or
    /// [`VerifyStep::Done`] with the report of the whole verification once the walk reaches
    /// the end of the stream (as it is then: records appended between pieces are verified
    /// too). Takes `&self`, so appends can run between pieces.
    ///
    /// # Errors
    ///
    /// What [`Storage::verify_stream_with`] returns, and [`StorageError::ForeignResume`] for a
    /// pause point of another stream or handle.
    pub fn verify_stream_piece(
        &self,
        stream: StreamId,
        from: Option<VerifyResume>,
        max_records: u64,
        on_event: impl FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError> {
        match self.readable(stream)? {
            Some(state) => {
                // A read holding the pool holds it briefly: waiting for it keeps the whole
                // walk on every thread.
                let mut pool = self
                    .verify_pool
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                state.verify(&mut pool, (self.handle, from, max_records.max(1)), on_event)
            }
            None => match from {
                Some(resume) => Err(StorageError::ForeignResume {
                    stream,
                    paused_on: format!("stream {} (this stream holds nothing)", resume.stream()),
                }),
                None => Ok(VerifyStep::Done(VerifyReport {
                    stream,
                    records_checked: 0,
                    restart_records_checked: 0,
                    segments_checked: 0,
                    bytes_checked: 0,
                    head: None,
                    next_offset: Offset::ZERO,
                })),
            },
        }
    }
}
