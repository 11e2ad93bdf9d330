//! Appending: optimistic concurrency with an expected offset, and the durability policies.
//!
//! An append checks the caller's [`ExpectedOffset`] against the stream's written head under
//! the write lock, then passes that head (offset and chain hash) to the backend, which checks
//! it again: a conflict is [`Error::OffsetConflict`] and nothing is written. An empty batch is
//! [`Error::EmptyBatch`] (the backend asserts against it; the store never lets one reach it).
//!
//! A backend error that is not a plain refusal (oversized event, offset overflow) means the
//! state on disk is uncertain: the store latches and refuses appends until reopened.

use std::fmt;

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_storage::backend::assert_offset_advanced;
use kimberlite_storage::StorageError;
use kimberlite_types::{Offset, StreamId};

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::store::{Kimberlite, State, StreamHead};

/// What an append expects the stream's next offset to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedOffset {
    /// Append wherever the stream ends.
    Any,
    /// The stream must be empty.
    NoStream,
    /// The stream's next offset must be exactly this one.
    Exact(Offset),
}

impl ExpectedOffset {
    fn allows(self, next_offset: Offset) -> bool {
        match self {
            ExpectedOffset::Any => true,
            ExpectedOffset::NoStream => next_offset == Offset::ZERO,
            ExpectedOffset::Exact(expected) => next_offset == expected,
        }
    }
}

impl fmt::Display for ExpectedOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedOffset::Any => f.write_str("any offset"),
            ExpectedOffset::NoStream => f.write_str("an empty stream"),
            ExpectedOffset::Exact(offset) => write!(f, "next offset {offset}"),
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the batch's first event.
    pub first_offset: Offset,
    /// The stream's next offset after the batch (`first_offset` + batch length).
    pub next_offset: Offset,
    /// Chain hash of the batch's last event: it commits to the whole stream so far.
    pub head: ChainHash,
}

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
        if self.inner.config.durability == Durability::GroupCommit {
            return self.append_grouped(id, events, expected);
        }
        let mut state = self.write_state();
        let result = self.append_locked(&mut state, id, events, expected)?;
        state.written_seq += 1;
        if let Some(heads) = state.heads.get_mut(&id) {
            heads.durable = StreamHead {
                next_offset: result.next_offset,
                hash: Some(result.head),
            };
        }
        Ok(result)
    }

    /// The part of an append done under the write lock: checks, then one backend call.
    pub(crate) fn append_locked(
        &self,
        state: &mut State,
        id: StreamId,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
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
        let tree_events = state.merkle.enabled().then(|| events.clone());
        let outcome = state
            .backend
            .append_batch(id, events, head.next_offset, head.hash, fsync);
        let (next_offset, hash) = outcome.map_err(|source| {
            if !is_plain_refusal(&source) {
                self.inner.commit.poison();
            }
            Error::storage(Some(&name), source)
        })?;
        assert_offset_advanced(head.next_offset, next_offset, count);
        let written = StreamHead {
            next_offset,
            hash: Some(hash),
        };
        state.heads.entry(id).or_default().written = written;
        if let Some(events) = tree_events {
            state.merkle.submit(id, head.next_offset.as_u64(), events);
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
        let (covered, mut syncs) = {
            let mut state = self.write_state();
            let syncs = state
                .backend
                .sync_begin()
                .map_err(|source| Error::storage(None, source))?;
            (state.written_seq, syncs)
        };
        for sync in &mut syncs {
            sync.run().map_err(|source| Error::storage(None, source))?;
        }
        let mut state = self.write_state();
        state.backend.sync_finished(&syncs);
        while state
            .pending
            .front()
            .is_some_and(|pending| pending.seq <= covered)
        {
            if let Some(pending) = state.pending.pop_front() {
                if let Some(heads) = state.heads.get_mut(&pending.stream) {
                    heads.durable = pending.head;
                }
            }
        }
        Ok(covered)
    }

    /// Makes every append so far durable, whatever the durability policy (useful after
    /// appending with [`Durability::Unsynced`]).
    pub fn sync(&self) -> Result<()> {
        self.write_state().merkle.flush();
        let seq = self.read_state().written_seq;
        if seq == 0 {
            return self
                .write_state()
                .backend
                .flush()
                .map_err(|source| Error::storage(None, source));
        }
        match self.inner.config.durability {
            Durability::GroupCommit => self.inner.commit.wait_durable(seq, || self.sync_written()),
            _ => self
                .write_state()
                .backend
                .flush()
                .map_err(|source| Error::storage(None, source)),
        }
    }
}

/// Backend errors that refuse a call without touching storage.
fn is_plain_refusal(error: &StorageError) -> bool {
    matches!(
        error,
        StorageError::PayloadTooLarge { .. } | StorageError::OffsetOverflow { .. }
    )
}
