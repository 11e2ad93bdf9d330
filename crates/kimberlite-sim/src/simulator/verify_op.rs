//! The simulator's verification operation: a whole-stream `verify_stream`, or the same walk in
//! pieces (`verify_stream_piece`) of 1–4,096 records, one piece per operation, so appends,
//! reads, flushes, restarts and crashes land between the pieces.
//!
//! Checked: a walk that ends (whole or in pieces) saw exactly the model's events and ends at
//! the mirror's chain hash, with events appended between its pieces included; an error is
//! allowed only as for reads (a fault injected during that call, or a flip read since open);
//! a pause point left over when the store is reopened is refused by the new handle as
//! `ForeignResume`, never walked (it would point into another handle's files).

use kimberlite_storage::{StorageBackend, StorageError, VerifyReport, VerifyStep};
use kimberlite_types::StreamId;
use rand::Rng;

use super::{Check, Run, SimStorage};

/// A piece walks `a * b` records, `a` and `b` drawn from `1..=PIECE_FACTOR`: from 1 to 4,096,
/// mostly hundreds, so that walks pause at every kind of place and most still reach the end
/// of a stream of thousands of events before a restart drops them.
const PIECE_FACTOR: u64 = 64;

impl Run {
    pub(super) fn verify(&mut self) -> Check {
        if self.paused_verify.is_some() || self.rng.random_bool(0.5) {
            return self.verify_piece();
        }
        let stream = self.pick_stream();
        let (result, faulted) = self.observed(|run| run.storage().map(|s| s.verify_stream(stream)));
        let result = result?;
        if result.is_ok() {
            self.stats.verifications += 1;
        }
        self.check_verified(stream, result, faulted)
    }

    /// Walks the next piece of the paused verification, or starts one on a random stream.
    fn verify_piece(&mut self) -> Check {
        let (stream, from) = match self.paused_verify.take() {
            Some(resume) => (resume.stream(), Some(resume)),
            None => (self.pick_stream(), None),
        };
        let records =
            self.rng.random_range(1..=PIECE_FACTOR) * self.rng.random_range(1..=PIECE_FACTOR);
        let (result, faulted) = self.observed(|run| {
            run.storage()
                .map(|s| s.verify_stream_piece(stream, from, records, |_, _| {}))
        });
        match result? {
            Ok(VerifyStep::Paused(resume)) => {
                if resume.stream() != stream {
                    return Err(format!(
                        "stream {stream}: a piece paused on stream {}",
                        resume.stream()
                    ));
                }
                self.stats.verify_pauses += 1;
                self.paused_verify = Some(resume);
                Ok(())
            }
            Ok(VerifyStep::Done(report)) => {
                self.stats.verifications += 1;
                self.stats.verifications_in_pieces += 1;
                self.check_verified(stream, Ok(report), faulted)
            }
            Err(error) => self.check_verified(stream, Err(error), faulted),
        }
    }

    /// Checks a verification that reached the end of `stream` (or failed) against the model.
    fn check_verified(
        &mut self,
        stream: StreamId,
        result: Result<VerifyReport, StorageError>,
        faulted: bool,
    ) -> Check {
        let expected_len = self.models.get(&stream).map_or(0, |m| m.log.len()) as u64;
        match result {
            Ok(report) if report.next_offset.as_u64() == expected_len => {
                let head = self
                    .mirror
                    .latest_chain_hash(stream)
                    .map_err(|e| e.to_string())?;
                if report.head != head {
                    return Err(format!(
                        "stream {stream}: verify head {:?}, model {:?}",
                        report.head, head
                    ));
                }
                Ok(())
            }
            Ok(report) => Err(format!(
                "stream {stream}: verify saw {} events, model has {expected_len}",
                report.next_offset
            )),
            Err(error) => {
                self.read_error_allowed(faulted, &format!("stream {stream}: verify"), &error)
            }
        }
    }

    /// Before a newly opened `storage` is used: a verification paused on the handle before it
    /// must be refused there (and is dropped).
    pub(super) fn refuse_paused_verify(&mut self, storage: &SimStorage) -> Check {
        let Some(resume) = self.paused_verify.take() else {
            return Ok(());
        };
        let stream = resume.stream();
        // Faults off: what this probe maps or reads stays cached in the new handle, and must
        // not count against it.
        self.fs.set_faults_enabled(false);
        let result = storage.verify_stream_piece(stream, Some(resume), 1, |_, _| {});
        self.fs.set_faults_enabled(true);
        match result {
            Err(StorageError::ForeignResume { .. }) => {
                self.stats.pause_points_refused += 1;
                Ok(())
            }
            // A stream the new handle could not open refuses everything before looking at
            // the pause point; what matters is that it is not walked.
            Err(error) if error.is_corruption() => Ok(()),
            other => Err(format!(
                "stream {stream}: a pause point of the previous handle was not refused after \
                 reopening: {other:?}"
            )),
        }
    }
}
