//! Full-chain verification and statistics.
//!
//! [`Kimberlite::verify`] and [`Kimberlite::verify_all`] walk every record of a stream from the
//! first: decode, checksum, offset and chain link. A stream that fails gets a [`Problem`] that
//! names the stream, the offset, and where the bytes are (segment, file, byte position); the
//! walk of other streams goes on, so one report shows every damaged stream. Verification also
//! checks that the stored chain ends where the store's own head says it does, which catches a
//! tail cut off behind the store's back while it is open.
//!
//! A stream holding events that the catalogue does not name is a problem too: names are
//! synced before their stream's first event, so only a cut or replaced catalogue explains it.
//!
//! Only I/O failures and usage errors are `Err`: damage is a report with problems, so callers
//! (like the command-line tool's exit codes) can tell "tampered" from "could not check".
//!
//! Each named stream's Merkle tree ([`crate::merkle`]) is recomputed from the events the same
//! walk verifies (`Storage::verify_stream_piece`: each record is read, checked and hashed once)
//! and compared with its side files, as [`Kimberlite::check_tree`] does: every stored node
//! the log's events complete, leaves and interior nodes at every level, then the size and
//! root. A difference is a problem naming the first stale node (level, index, its level
//! file and byte) and the first offset it covers.
//!
//! The walk goes in pieces of [`VERIFY_PIECE_RECORDS`] records, each under the store's read
//! lock, so appends wait for one piece, not for a whole stream's verification (seconds for
//! large streams). The last piece reaches the stream's end as it is then, and the store's
//! own head is compared with it under that piece's lock. The tree is compared with the
//! durable events as they were when the verification began (later ones are the next
//! verification's to check).
//!
//! What verification cannot see on its own: whole records cut from the end of a stream *before*
//! the store was opened (the recovered head is the stored one). Head hashes kept outside the
//! store close that gap: see [`crate::Anchor`] and [`Kimberlite::check_anchor`].

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_storage::{Location, StorageError, VerifyStep};
use kimberlite_types::{Offset, StreamId};

use crate::catalog::CATALOG_STREAM;
use crate::error::{Error, Result};
use crate::proofs::{tree_error, TreeCheck};
use crate::report::{Problem, StorageStats, StreamReport, StreamStats, VerifyReport};
use crate::state::State;
use crate::store::Kimberlite;
use crate::tree_check::{recompute_beside, EventBatch, TreeRecompute};

/// Name shown for the system stream that holds the catalogue.
pub const CATALOG_LABEL: &str = "(catalogue)";

impl Kimberlite {
    /// Verifies every record of stream `id`, from the first to the stream's end as it is when
    /// the walk gets there (events appended meanwhile included), and its Merkle tree against
    /// the events that were durable when it began. Appends go on beside it: it holds the
    /// store's lock a piece of 16,384 records at a time.
    /// Errors: [`Error::UnknownStream`], I/O.
    pub fn verify(&self, id: StreamId) -> Result<VerifyReport> {
        self.verify_with(id, |_| {})
    }

    /// Like [`Kimberlite::verify`], calling `progress` as [`Kimberlite::verify_all_with`]
    /// does: the calls add up to the stream's events (plus any appended meanwhile).
    pub fn verify_with(&self, id: StreamId, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
        self.read_state().name_of(id)?;
        self.settle_unsynced_trees()?;
        let mut report = VerifyReport::default();
        self.verify_told(id, &mut report, &mut progress)?;
        self.report_losses(&mut report, |loss| loss == id);
        Ok(report)
    }

    /// Verifies every stream: the system catalogue first, then each stream holding data (named
    /// or not) in id order.
    pub fn verify_all(&self) -> Result<VerifyReport> {
        self.verify_all_with(|_| {})
    }

    /// Like [`Kimberlite::verify_all`], calling `progress` with the number of records verified
    /// since its last call, as the walk goes (after each piece of 16,384 records, so a large
    /// stream moves a progress bar too), and after a stream whose walk stopped early with the
    /// records it did not reach: the calls add up to the records the streams held, what
    /// [`Kimberlite::total_events`] counts (plus any appended meanwhile).
    pub fn verify_all_with(&self, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
        self.settle_unsynced_trees()?;
        let mut report = VerifyReport::default();
        for id in self.all_stream_ids() {
            self.verify_told(id, &mut report, &mut progress)?;
        }
        self.report_losses(&mut report, |_| true);
        Ok(report)
    }

    /// [`Self::verify_into`], then tells `progress` the records a walk that stopped early did
    /// not reach, so that the calls add up to the stream's events.
    fn verify_told(
        &self,
        id: StreamId,
        report: &mut VerifyReport,
        progress: Progress<'_>,
    ) -> Result<()> {
        let mut walked = 0;
        let records = self.verify_into(id, report, &mut |records| {
            walked += records;
            progress(records);
        })?;
        if records > walked {
            progress(records - walked);
        }
        Ok(())
    }

    /// Events stored over all streams, the catalogue included: what `verify_all` will walk.
    #[must_use]
    pub fn total_events(&self) -> u64 {
        let state = self.read_state();
        let data: u64 = state
            .heads
            .values()
            .map(|heads| heads.written.next_offset.as_u64())
            .sum();
        data + state.catalog.len()
    }

    /// Head and storage footprint of every stream (catalogue and unnamed streams included), in
    /// id order.
    #[must_use]
    pub fn stats(&self) -> Vec<StreamStats> {
        self.all_stream_ids()
            .into_iter()
            .map(|id| {
                let state = self.read_state();
                let (events, head) = state.known_head(id);
                StreamStats {
                    stream: id,
                    name: state.catalog.name(id).map(str::to_owned),
                    events,
                    head,
                    damaged: state.heads.get(&id).is_some_and(|heads| heads.damaged),
                    storage: StorageStats::of(&*state.backend, id),
                }
            })
            .collect()
    }

    /// A problem for each stream of `which` whose log open found shorter than the store's
    /// own files say it was (module `lost`).
    fn report_losses(&self, report: &mut VerifyReport, which: impl Fn(StreamId) -> bool) {
        let state = self.read_state();
        for loss in self.inner.lost.iter().filter(|loss| which(loss.stream)) {
            let name = state.catalog.name(loss.stream).map(str::to_owned);
            report.streams.retain(|stream| stream.stream != loss.stream);
            report.problems.push(loss.problem(name));
        }
    }

    /// The catalogue, every named stream and every stream the backend holds, in id order.
    fn all_stream_ids(&self) -> Vec<StreamId> {
        let state = self.read_state();
        let mut ids = state.backend.streams();
        ids.push(CATALOG_STREAM);
        ids.extend(state.catalog.iter().map(|(_, id)| id));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Verifies stream `id` and, for a named stream with a tree, recomputes its Merkle tree
    /// from the events the same walk hands over (`tree_check`); adds a report or a problem.
    /// Returns the records checked.
    fn verify_into(
        &self,
        id: StreamId,
        report: &mut VerifyReport,
        progress: Progress<'_>,
    ) -> Result<u64> {
        let (name, stored_tree, start_events, (_, start)) = {
            let state = self.read_state();
            let name = state.catalog.name(id).map(str::to_owned);
            let stored_tree = (name.is_some() && state.merkle.enabled())
                .then(|| Self::stored_tree_head_in(&state, id));
            let start = crate::retention::tree_start(&state, id);
            (name, stored_tree, state.known_head(id).0, start)
        };
        // A pruned stream's tree is also checked against the checkpoint that covered its cut.
        let cut = self.cut_checkpoint(id);
        let sizes: Vec<u64> = cut.iter().map(|(size, _)| *size).collect();
        let recompute = match &stored_tree {
            Some(Ok(stored)) => Some(TreeRecompute::new(id, *stored, &sizes).starting_from(start)),
            _ => None,
        };
        // Each comparison takes the read lock for itself, as `check_tree`'s do; the walk hands
        // events over only between its pieces, never while it holds the lock.
        let compare = |tree: &mut TreeRecompute| tree.compare_chunk(&self.read_state().merkle);
        let (walked, recompute) = match recompute {
            Some(tree) => {
                let (walked, tree) = recompute_beside(tree, &compare, start_events, |on_batch| {
                    self.walk_in_pieces(id, Some(on_batch), progress)
                });
                (walked, Some(tree))
            }
            None => (self.walk_in_pieces(id, None, progress), None),
        };
        match walked {
            Ok((verified, end)) => {
                let stream_report = StreamReport {
                    stream: id,
                    name: name.clone(),
                    records_checked: verified.records_checked,
                    restart_records_checked: verified.restart_records_checked,
                    segments_checked: verified.segments_checked,
                    bytes_checked: verified.bytes_checked,
                    head: verified.head,
                    next_offset: verified.next_offset,
                };
                let known = !end.damaged && (name.is_some() || id == CATALOG_STREAM);
                let unnamed = id != CATALOG_STREAM && name.is_none();
                if known
                    && (verified.next_offset.as_u64(), verified.head)
                        != (end.known_events, end.known_head)
                {
                    report
                        .problems
                        .push(head_mismatch(id, name, end.known_events, &verified));
                } else if unnamed && verified.records_checked > 0 {
                    report.problems.push(unnamed_stream(id, &verified));
                } else {
                    if let Some(Err(error)) = stored_tree {
                        return Err(error);
                    }
                    let finished = recompute.map(|tree| tree.finish(&self.read_state().merkle));
                    let tree = finished
                        .transpose()
                        .map_err(|error| tree_error(name.as_deref().unwrap_or_default(), error))?;
                    let cut_problem = tree
                        .as_ref()
                        .and_then(|check| self.cut_problem(id, name.clone(), cut, check));
                    match tree.filter(|check| !check.tree_matches_log()) {
                        Some(check) => report.problems.push(self.tree_problem(id, name, &check)),
                        None => match cut_problem {
                            Some(problem) => report.problems.push(problem),
                            None => report.streams.push(stream_report),
                        },
                    }
                }
                Ok(verified.records_checked)
            }
            Err(source) => match problem(id, name.clone(), &source) {
                Some(problem) => {
                    report.problems.push(problem);
                    Ok(start_events)
                }
                None => Err(Error::Storage {
                    name,
                    source: Box::new(source),
                }),
            },
        }
    }

    /// Walks stream `id` from the first record to its end in pieces of
    /// [`VERIFY_PIECE_RECORDS`], each under the store's read lock, so appends wait for one
    /// piece rather than the whole walk; hands the events each piece verified to `on_batch`
    /// once the piece has let the lock go, and the number of records it verified to
    /// `progress`. Returns the storage's report and what the store
    /// held for the stream under the lock of the last piece: the walk ends at the stream's
    /// end as it is then (records appended meanwhile are verified too), and is compared
    /// with that.
    pub(crate) fn walk_in_pieces(
        &self,
        id: StreamId,
        mut on_batch: Option<EventSink<'_>>,
        progress: Progress<'_>,
    ) -> std::result::Result<(kimberlite_storage::VerifyReport, WalkEnd), StorageError> {
        // A piece's events, kept only for a caller that wants them.
        let capacity = if on_batch.is_some() {
            VERIFY_PIECE_RECORDS as usize
        } else {
            0
        };
        let mut from = None;
        let mut verified = Vec::with_capacity(capacity);
        let mut reported = 0;
        loop {
            let (step, checked) = {
                let state = self.read_state();
                let mut keep = |offset, payload: &Bytes| {
                    if on_batch.is_some() {
                        verified.push((offset, payload.clone()));
                    }
                };
                match state.backend.verify_stream_piece(
                    id,
                    from.take(),
                    VERIFY_PIECE_RECORDS,
                    &mut keep,
                ) {
                    Ok(VerifyStep::Done(report)) => {
                        let checked = report.records_checked;
                        (Ok(Some((report, state.walk_end(id)))), checked)
                    }
                    Ok(VerifyStep::Paused(resume)) => {
                        let checked = resume.records_checked();
                        from = Some(resume);
                        (Ok(None), checked)
                    }
                    Err(error) => (Err(error), reported),
                }
            };
            // The callers' callbacks run with the lock let go (one may well append).
            if let Some(on_batch) = on_batch.as_mut() {
                if !verified.is_empty() {
                    on_batch(std::mem::replace(
                        &mut verified,
                        Vec::with_capacity(capacity),
                    ));
                }
            }
            if checked > reported {
                progress(checked - reported);
                reported = checked;
            }
            if let Some(done) = step? {
                return Ok(done);
            }
        }
    }

    /// The problem of a stream whose stored Merkle tree is not the tree of its log: the first
    /// stale node, with its level file and byte, when a stored node differs; otherwise the
    /// tree's directory and where the sizes part.
    fn tree_problem(&self, id: StreamId, name: Option<String>, check: &TreeCheck) -> Problem {
        let sizes = format!(
            "stored tree: {} events, root {}; log: {} events, root {}",
            check.stored.tree_size, check.stored.root, check.log_size, check.log_root
        );
        let dir = self.path().map(|path| crate::merkle::tree_dir(path, id));
        let (offset, reason, file, position) = match check.first_stale_node {
            Some(node) => {
                let reason = if node.level == 0 {
                    format!(
                        "the Merkle tree side files disagree with the log from offset {} on: \
                         leaf {} is not the hash of the event ({sizes})",
                        node.index, node.index
                    )
                } else {
                    let leaf = match check.first_stale_leaf {
                        Some(leaf) => format!("; the first stale leaf is offset {leaf}"),
                        None => "; every leaf below it matches the log".to_owned(),
                    };
                    format!(
                        "the Merkle tree side files disagree with the log: node {} of level {} \
                         (over offsets {}..={}) is not the hash of those events{leaf} ({sizes})",
                        node.index,
                        node.level,
                        node.first_offset(),
                        node.last_offset()
                    )
                };
                let file = dir.map(|dir| dir.join(crate::merkle::level_name(node.level)));
                (
                    node.first_offset(),
                    reason,
                    file,
                    Some(node.file_position()),
                )
            }
            None => {
                let offset = check.stored.tree_size.min(check.log_size);
                let reason = format!(
                    "the Merkle tree side files disagree with the log from offset {offset} on \
                     ({sizes})"
                );
                (offset, reason, dir, None)
            }
        };
        Problem {
            stream: id,
            offset: Offset::new(offset),
            segment: None,
            file,
            position,
            message: format!("stream {:?}: {reason}", name.as_deref().unwrap_or_default()),
            name,
            reason,
        }
    }
}

/// Data records a store verification walks per hold of the store's read lock (`verify`
/// holds it so the walk and the heads it ends with describe the same log): an append waits
/// for one piece of a verification, never for the whole walk.
pub(crate) const VERIFY_PIECE_RECORDS: u64 = 16_384;

/// Where a walk hands the events it verified, a piece's at a time.
pub(crate) type EventSink<'a> = &'a mut dyn FnMut(EventBatch);

/// Told how many more records a walk verified.
pub(crate) type Progress<'a> = &'a mut dyn FnMut(u64);

/// What the store held for a stream when a verification walk of it reached the end, under
/// the same lock as that last piece.
pub(crate) struct WalkEnd {
    pub(crate) known_events: u64,
    pub(crate) known_head: Option<ChainHash>,
    pub(crate) damaged: bool,
}

impl State {
    fn walk_end(&self, id: StreamId) -> WalkEnd {
        let (known_events, known_head) = self.known_head(id);
        WalkEnd {
            known_events,
            known_head,
            damaged: self.heads.get(&id).is_some_and(|heads| heads.damaged),
        }
    }

    /// Events and head hash the store itself holds for a stream (written, not only durable).
    fn known_head(&self, id: StreamId) -> (u64, Option<ChainHash>) {
        if id == CATALOG_STREAM {
            return (self.catalog.len(), self.catalog_head);
        }
        self.heads.get(&id).map_or((0, None), |heads| {
            (heads.written.next_offset.as_u64(), heads.written.hash)
        })
    }
}

fn head_mismatch(
    id: StreamId,
    name: Option<String>,
    known_events: u64,
    verified: &kimberlite_storage::VerifyReport,
) -> Problem {
    let offset = verified.next_offset.min(Offset::new(known_events));
    Problem {
        stream: id,
        name,
        offset,
        segment: None,
        file: None,
        position: None,
        reason: "records were removed or replaced".to_owned(),
        message: format!(
            "the stored chain ends at offset {} but the store holds {known_events} events: \
             records were removed or replaced",
            verified.next_offset
        ),
    }
}

/// A stream that holds events although no catalogue entry names it: the catalogue lost
/// entries (its tail was cut, or it was replaced). Names are synced before any event of their
/// stream is written, so this cannot happen by a crash, except under `Durability::Unsynced`.
fn unnamed_stream(id: StreamId, verified: &kimberlite_storage::VerifyReport) -> Problem {
    let reason = format!(
        "holds {} events but the catalogue names no stream {id}: catalogue entries were removed",
        verified.records_checked
    );
    Problem {
        stream: id,
        name: None,
        offset: Offset::ZERO,
        segment: None,
        file: None,
        position: None,
        message: format!("stream {id} {reason}"),
        reason,
    }
}

/// The [`Problem`] a corruption error describes; `None` for errors that are not corruption.
fn problem(id: StreamId, name: Option<String>, error: &StorageError) -> Option<Problem> {
    if let StorageError::Unrecoverable { path, reason, .. } = error {
        // The stream's files could not be opened at all: no record is readable.
        return Some(Problem {
            stream: id,
            name,
            offset: Offset::ZERO,
            segment: None,
            file: Some(path.clone()),
            position: None,
            reason: format!("its files cannot be opened: {reason}"),
            message: error.to_string(),
        });
    }
    let (offset, location, reason): (Offset, &Location, String) = match error {
        StorageError::CorruptRecord {
            offset,
            location,
            source,
            ..
        } => (*offset, location, source.to_string()),
        StorageError::OffsetMismatch {
            offset,
            location,
            found,
            ..
        } => (
            *offset,
            location,
            format!("the record there holds offset {found}: records were dropped or reordered"),
        ),
        StorageError::ChainVerificationFailed {
            offset, location, ..
        } => (
            *offset,
            location,
            "hash chain broken: the record does not link to the one before it".to_owned(),
        ),
        // Bytes the store had synced are gone (a segment cut on a record boundary below its
        // durable length): a finding like the others, not a reason to stop verifying.
        StorageError::MissingRecords {
            offset, location, ..
        } => (
            *offset,
            location,
            "records missing: the segment ends before records that had been synced".to_owned(),
        ),
        _ => return None,
    };
    Some(Problem {
        stream: id,
        name,
        offset,
        segment: Some(location.segment),
        file: location.file.clone(),
        position: Some(location.position),
        reason,
        message: error.to_string(),
    })
}

#[cfg(test)]
pub(crate) fn problem_for_tests(
    id: StreamId,
    name: Option<String>,
    error: &StorageError,
) -> Option<Problem> {
    problem(id, name, error)
}
