//! The two steps under the store's write lock that every append goes through, whatever its
//! durability: writing one batch ([`Kimberlite::append_locked`]: checks, then one backend
//! call) and the group commit sync that publishes written heads to readers
//! ([`Kimberlite::sync_written`]).
//!
//! A backend error that is not a plain refusal (oversized event, offset overflow) means the
//! state on disk is uncertain: the store latches and refuses appends until reopened.

use std::sync::Arc;

use bytes::Bytes;
use kimberlite_storage::backend::assert_offset_advanced;
use kimberlite_storage::{PayloadTransform, StorageError};
use kimberlite_types::StreamId;

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::head::{AppendResult, ExpectedOffset, StreamHead};
use crate::state::{State, TreeBacklog};
use crate::store::Kimberlite;
use crate::sync_helper::run_in_turn;
use crate::writeback::Writeback;

impl Kimberlite {
    /// The part of an append done under the write lock: checks, then one backend call.
    pub(crate) fn append_locked(
        &self,
        state: &mut State,
        id: StreamId,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
    ) -> Result<AppendResult> {
        let count = events.len();
        self.append_batches_locked(state, id, events, &[count], expected, None)
    }

    /// [`Self::append_locked`] of several callers' batches in one backend call (group
    /// commit's merged runs): `events` holds batches of `batch_lens` events, each kept
    /// all-or-nothing across a crash on its own (`StoreBackend::append_batches`). With a
    /// `transform` (one batch only), the events are stored as it changes them, chunk by chunk
    /// where the backend encodes them (`StoreBackend::append_transformed`).
    pub(crate) fn append_batches_locked(
        &self,
        state: &mut State,
        id: StreamId,
        events: Vec<Bytes>,
        batch_lens: &[usize],
        expected: ExpectedOffset,
        transform: Option<Arc<dyn PayloadTransform>>,
    ) -> Result<AppendResult> {
        if self.inner.commit.failed() {
            return Err(Error::Poisoned);
        }
        let name = state.name_of(id)?;
        if events.is_empty() {
            return Err(Error::EmptyBatch {
                name: name.to_owned(),
            });
        }
        let heads = state.heads.get(&id).copied().unwrap_or_default();
        if heads.damaged {
            return Err(Error::StreamDamaged {
                name: name.to_owned(),
            });
        }
        if let Some(loss) = self.inner.lost.iter().find(|loss| loss.stream == id) {
            return Err(loss.refusal(name));
        }
        let head = heads.written;
        if !expected.allows(head.next_offset) {
            return Err(Error::OffsetConflict {
                name: name.to_owned(),
                expected,
                actual: head.next_offset,
            });
        }
        let name = name.to_owned();
        let count = events.len();
        let fsync = self.inner.config.durability == Durability::SyncEachAppend;
        let tree_events = (state.merkle.enabled() && transform.is_none()).then(|| events.clone());
        let outcome = match transform {
            None => state
                .backend
                .append_batches(id, events, batch_lens, head.next_offset, head.hash, fsync)
                .map(|(next, hash)| (next, hash, tree_events)),
            Some(transform) => state
                .backend
                .append_transformed(id, events, transform, head.next_offset, head.hash, fsync)
                .map(|(next, hash, stored)| (next, hash, state.merkle.enabled().then_some(stored))),
        };
        let (next_offset, hash, tree_events) = outcome.map_err(|source| {
            if !is_plain_refusal(&source) {
                self.inner.commit.poison();
            }
            Error::storage(Some(&name), source)
        })?;
        assert_offset_advanced(head.next_offset, next_offset, count);
        if fsync {
            self.count_sync();
        }
        let written = StreamHead {
            next_offset,
            hash: Some(hash),
        };
        state.heads.entry(id).or_default().written = written;
        if let Some(events) = tree_events {
            if fsync {
                state.merkle.submit(id, head.next_offset.as_u64(), events);
            } else {
                state
                    .tree_backlog
                    .push(id, head.next_offset.as_u64(), events);
            }
        }
        if self.inner.config.durability == Durability::Unsynced {
            self.write_back(state);
        }
        Ok(AppendResult {
            first_offset: head.next_offset,
            next_offset,
            head: hash,
        })
    }

    /// The group commit leader's sync: makes everything written durable, then publishes the
    /// covered writes' heads to readers. Returns the highest write number covered.
    ///
    /// The write lock is held only to note what is written and take handles on the files
    /// written since their last sync (`StoreBackend::sync_begin`), and
    /// again to publish. The device flush itself (data only, as `SyncEachAppend` syncs each
    /// batch) runs outside the lock, so appenders keep writing the batches that the next sync
    /// will cover. A failed sync latches the coordinator (fail-stop).
    pub(crate) fn sync_written(&self) -> Result<u64> {
        let (covered, mut syncs, backlog) = {
            let mut state = self.write_state();
            let syncs = state
                .backend
                .sync_begin()
                .map_err(|source| Error::storage(None, source))?;
            let backlog = state.tree_backlog.take();
            (state.written_seq, syncs, backlog)
        };
        // Several files (a stream's and the access log's) are flushed at once.
        self.inner
            .sync_helper
            .run_all(&mut syncs)
            .map_err(|source| Error::storage(None, source))?;
        self.count_sync();
        let mut state = self.write_state();
        state.backend.sync_finished(&syncs);
        let mut backlog = backlog;
        backlog.submit_to(&mut state.merkle);
        let mut advanced = Vec::new();
        while state
            .pending
            .front()
            .is_some_and(|pending| pending.seq <= covered)
        {
            if let Some(pending) = state.pending.pop_front() {
                if let Some(heads) = state.heads.get_mut(&pending.stream) {
                    heads.durable = pending.head;
                }
                if !advanced.contains(&pending.stream) {
                    advanced.push(pending.stream);
                }
            }
        }
        drop(state);
        self.inner.durable_watch.publish(&advanced);
        Ok(covered)
    }
}

/// Backend errors that refuse a call without touching storage.
fn is_plain_refusal(error: &StorageError) -> bool {
    matches!(
        error,
        StorageError::PayloadTooLarge { .. }
            | StorageError::OffsetOverflow { .. }
            | StorageError::Transform { .. }
    )
}

impl Kimberlite {
    /// After an unsynced append (under the write lock): records a finished writeback, starts
    /// one, or waits, as the module's table says.
    pub(crate) fn write_back(&self, state: &mut State) {
        self.count_writeback(state.record_writeback(false));
        if !state.writeback.is_running() && state.tree_backlog.bytes() >= Writeback::START_BYTES {
            self.start_writeback(state);
        }
        if state.tree_backlog.bytes() > TreeBacklog::UNSYNCED_BYTES_MAX {
            self.count_writeback(state.record_writeback(true));
        }
        if state.tree_backlog.bytes() > TreeBacklog::UNSYNCED_BYTES_MAX {
            // The batch is written either way; a failed sync stops later appends (fail-stop).
            match state.backend.sync() {
                Ok(()) => state.tree_backlog.submit_to(&mut state.merkle),
                Err(_) => self.inner.commit.poison(),
            }
        }
    }

    /// Counts a recorded writeback as a sync, or stops the store after a failed one.
    fn count_writeback(&self, recorded: Option<Result<(), StorageError>>) {
        match recorded {
            Some(Ok(())) => self.count_sync(),
            Some(Err(_)) => self.inner.commit.poison(),
            None => {}
        }
    }

    fn start_writeback(&self, state: &mut State) {
        let mut syncs = match state.backend.sync_begin() {
            Ok(syncs) => syncs,
            Err(_) => return self.inner.commit.poison(),
        };
        let mark = state.tree_backlog.mark();
        if !syncs.is_empty() {
            match state.writeback.start(syncs, mark) {
                Ok(()) => return,
                Err(refused) => syncs = refused,
            }
            if run_in_turn(&mut syncs).is_err() {
                return self.inner.commit.poison();
            }
            self.count_sync();
        }
        // Synced here (or nothing to sync: a backend in memory).
        state.synced(mark, &syncs);
    }
}
