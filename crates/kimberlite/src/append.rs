//! Appending: optimistic concurrency with an expected offset, and the durability policies.
//!
//! An append checks the caller's [`ExpectedOffset`] against the stream's written head under
//! the write lock, then passes that head (offset and chain hash) to the backend, which checks
//! it again: a conflict is [`Error::OffsetConflict`] and nothing is written. An empty batch is
//! [`Error::EmptyBatch`] (the backend asserts against it; the store never lets one reach it).
//!
//! The write itself is in `write.rs`; group commit's queue in `writers.rs` and
//! `group_append.rs`.

use std::sync::Arc;

use bytes::Bytes;
use kimberlite_storage::{transform_events, PayloadTransform, StorageError};
use kimberlite_types::StreamId;

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::head::{AppendResult, ExpectedOffset, StreamHead};
use crate::state::State;
use crate::store::Kimberlite;

impl Kimberlite {
    /// Appends `events` to stream `id` as one batch, if its next offset is what `expected`
    /// says; returns where the batch went and the new head hash.
    ///
    /// Returns once the batch is as durable as the store's [`Durability`] policy promises.
    /// Errors: [`Error::UnknownStream`], [`Error::EmptyBatch`], [`Error::OffsetConflict`]
    /// (nothing written), [`Error::Storage`], [`Error::Poisoned`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kimberlite::{Error, ExpectedOffset, Kimberlite};
    /// let store = Kimberlite::in_memory();
    /// let id = store.create_stream("audit")?;
    /// store.append(id, ["a"], ExpectedOffset::NoStream)?;
    /// let stale = store.append(id, ["b"], ExpectedOffset::Exact(0.into()));
    /// assert!(matches!(stale, Err(Error::OffsetConflict { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn append<I>(
        &self,
        id: StreamId,
        events: I,
        expected: ExpectedOffset,
    ) -> Result<AppendResult>
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let events: Vec<Bytes> = events.into_iter().map(Into::into).collect();
        self.refuse_sealed_looking(id, &events)?;
        self.append_unchecked(id, events, expected)
    }

    /// Appends `batches` to stream `id` in order, each a batch of its own (all-or-nothing
    /// across a crash, whatever becomes of the others, as if appended alone right after the
    /// one before), if the stream's next offset is what `expected` says for the first. Not
    /// under group commit, all go to the backend in one call: a replica applying a log entry
    /// of many small appends pays one write, not one per append. Returns the whole run's
    /// result: the first batch's first offset, the last one's next offset and head.
    ///
    /// Errors: as [`Kimberlite::append`]; [`Error::EmptyBatch`] if there is no batch or one
    /// is empty (nothing written).
    pub fn append_batches(
        &self,
        id: StreamId,
        batches: Vec<Vec<Bytes>>,
        expected: ExpectedOffset,
    ) -> Result<AppendResult> {
        if batches.is_empty() || batches.iter().any(Vec::is_empty) {
            let name = self
                .stream_name(id)
                .ok_or(Error::UnknownStream { stream: id })?;
            return Err(Error::EmptyBatch { name });
        }
        for batch in &batches {
            self.refuse_sealed_looking(id, batch)?;
        }
        if self.inner.config.read_only {
            return Err(Error::ReadOnly);
        }
        if self.inner.config.durability == Durability::GroupCommit {
            // Each batch is queued as any append (checked non-empty above).
            let mut batches = batches.into_iter();
            let mut run = self.append_grouped(id, batches.next().unwrap_or_default(), expected)?;
            for batch in batches {
                let appended =
                    self.append_grouped(id, batch, ExpectedOffset::Exact(run.next_offset))?;
                run = AppendResult {
                    first_offset: run.first_offset,
                    ..appended
                };
            }
            return Ok(run);
        }
        let lens: Vec<usize> = batches.iter().map(Vec::len).collect();
        let events: Vec<Bytes> = batches.into_iter().flatten().collect();
        let mut state = self.write_state();
        let result = self.append_batches_locked(&mut state, id, events, &lens, expected, None)?;
        self.after_direct_append(state, id, &result);
        Ok(result)
    }

    /// A plain event must never read back as a sealed one (`crate::sealed::envelope`): every
    /// path that appends plain events ([`Kimberlite::append`], [`Kimberlite::write_all`])
    /// refuses one that starts like an envelope.
    pub(crate) fn refuse_sealed_looking(&self, id: StreamId, events: &[Bytes]) -> Result<()> {
        let Some(index) = events
            .iter()
            .position(|event| crate::sealed::envelope::looks_sealed(event))
        else {
            return Ok(());
        };
        let name = self
            .stream_name(id)
            .ok_or(Error::UnknownStream { stream: id })?;
        Err(Error::Sealed(crate::sealed::SealError::LooksSealed {
            name,
            index,
        }))
    }

    /// [`Kimberlite::append`] without the check against sealed-looking events: for sealed
    /// appends and the erasure log (`crate::sealed`).
    pub(crate) fn append_unchecked(
        &self,
        id: StreamId,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
    ) -> Result<AppendResult> {
        if self.inner.config.read_only {
            return Err(Error::ReadOnly);
        }
        if self.inner.config.durability == Durability::GroupCommit {
            return self.append_grouped(id, events, expected);
        }
        let mut state = self.write_state();
        let result = self.append_locked(&mut state, id, events, expected)?;
        self.after_direct_append(state, id, &result);
        Ok(result)
    }

    /// After an append not under group commit: its head is as durable as the policy makes
    /// it, for readers to see.
    fn after_direct_append(
        &self,
        mut state: std::sync::RwLockWriteGuard<'_, State>,
        id: StreamId,
        result: &AppendResult,
    ) {
        state.written_seq += 1;
        if let Some(heads) = state.heads.get_mut(&id) {
            heads.durable = StreamHead {
                next_offset: result.next_offset,
                hash: Some(result.head),
            };
        }
        drop(state);
        self.inner.durable_watch.publish(&[id]);
    }

    /// [`Self::append_unchecked`] of `events` as `transform` changes them: the store holds,
    /// hashes and proves the transformed events (sealed appends, `crate::sealed`). Unsynced
    /// or synced per append, each chunk is transformed where the backend encodes it, beside
    /// its hashing; under group commit the batch is transformed first, then queued as any.
    pub(crate) fn append_transformed(
        &self,
        id: StreamId,
        events: Vec<Bytes>,
        transform: Arc<dyn PayloadTransform>,
        expected: ExpectedOffset,
    ) -> Result<AppendResult> {
        if self.inner.config.read_only {
            return Err(Error::ReadOnly);
        }
        if self.inner.config.durability == Durability::GroupCommit {
            let stored = transform_events(&*transform, 0, &events).map_err(|source| {
                let name = self.stream_name(id);
                Error::storage(
                    name.as_deref(),
                    StorageError::Transform { stream: id, source },
                )
            })?;
            return self.append_grouped(id, stored, expected);
        }
        let count = events.len();
        let mut state = self.write_state();
        let result = self.append_batches_locked(
            &mut state,
            id,
            events,
            &[count],
            expected,
            Some(transform),
        )?;
        self.after_direct_append(state, id, &result);
        Ok(result)
    }

    /// Writes each stream's active segment index, with a resume point over the bytes already
    /// synced, so that the next open, after a crash too, scans only what was appended after
    /// it instead of the whole active segment. Makes nothing durable that was not, and moves
    /// no durable watermark: only [`Kimberlite::sync`] does that. For long writers (an import)
    /// to call now and then; the indexes are derived data, rebuilt if lost.
    pub fn flush_indexes(&self) -> Result<()> {
        self.write_state()
            .backend
            .flush_indexes()
            .map_err(|source| Error::storage(None, source))
    }

    /// Makes every append so far durable, whatever the durability policy (useful after
    /// appending with [`Durability::Unsynced`]).
    pub fn sync(&self) -> Result<()> {
        self.make_appends_durable(SyncScope::SegmentsAndIndexes)
    }

    /// Makes every append so far durable as group commit does, whatever the durability
    /// policy: the segments' data only (one device flush per segment written since the last
    /// sync), not the indexes, manifests and tree files [`Self::sync`] also writes (derived
    /// data, rebuilt at open if missing or behind). The device flush runs outside the store's
    /// write lock, so appends go on meanwhile (a later sync covers them). For a caller that
    /// appends unsynced and syncs in a thread of its own, as a replica does for its applied
    /// batches of Raft entries. A failed sync stops the store (fail-stop: later appends and
    /// syncs return [`Error::Poisoned`]).
    pub fn sync_segments(&self) -> Result<()> {
        if self.inner.config.durability == Durability::GroupCommit {
            return self.make_appends_durable(SyncScope::Segments);
        }
        if self.inner.commit.failed() {
            return Err(Error::Poisoned);
        }
        let (mut syncs, mark) = {
            let mut state = self.write_state();
            let syncs = state
                .backend
                .sync_begin()
                .map_err(|source| Error::storage(None, source))?;
            (syncs, state.tree_backlog.mark())
        };
        for sync in &mut syncs {
            if let Err(source) = sync.run() {
                self.inner.commit.poison();
                return Err(Error::storage(None, source));
            }
        }
        self.count_sync();
        self.write_state().synced(mark, &syncs);
        Ok(())
    }

    /// Under group commit, waits for (or leads) the sync of everything written; otherwise
    /// syncs the backend as `scope` says, then hands the synced leaves to the Merkle tree.
    fn make_appends_durable(&self, scope: SyncScope) -> Result<()> {
        let seq = self.read_state().written_seq;
        if seq > 0 && self.inner.config.durability == Durability::GroupCommit {
            self.inner
                .commit
                .wait_durable(seq, || self.sync_written())?;
        } else {
            let mut state = self.write_state();
            let synced = match scope {
                SyncScope::SegmentsAndIndexes => state.backend.flush(),
                SyncScope::Segments => state.backend.sync(),
            };
            synced.map_err(|source| Error::storage(None, source))?;
            self.count_sync();
            let State {
                tree_backlog,
                merkle,
                ..
            } = &mut *state;
            tree_backlog.submit_to(merkle);
        }
        self.write_state().merkle.flush();
        Ok(())
    }
}

/// What [`Kimberlite::sync`] and [`Kimberlite::sync_segments`] make durable outside group
/// commit.
#[derive(Clone, Copy)]
enum SyncScope {
    /// The segments, then each stream's index and manifest (`backend.flush`).
    SegmentsAndIndexes,
    /// The segments' data only (`backend.sync`).
    Segments,
}
