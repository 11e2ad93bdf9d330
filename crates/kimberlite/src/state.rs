//! [`State`]: everything behind the store's lock (backend, catalogue, heads, pending group
//! commit writes, Merkle trees). The store and its write, read and proof paths take it as an
//! argument; it knows none of them.

use std::collections::{HashMap, VecDeque};

use kimberlite_crypto::ChainHash;
use kimberlite_storage::StoreBackend;
use kimberlite_types::StreamId;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::head::StreamHead;
use crate::merkle_worker::TreeWorker;

/// Heads of one stream: `written` is what the backend holds; `durable` is what has been
/// acknowledged to appenders and is shown to readers (they differ only while a group commit
/// sync is pending).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Heads {
    pub(crate) written: StreamHead,
    pub(crate) durable: StreamHead,
    /// Set when recovery found the stream's stored records damaged: its head cannot be
    /// trusted, so appends are refused (reads and verification report the damage itself).
    pub(crate) damaged: bool,
}

/// A write made under group commit whose sync has not finished yet.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    pub(crate) seq: u64,
    pub(crate) stream: StreamId,
    pub(crate) head: StreamHead,
}

/// Everything behind the store's lock.
pub(crate) struct State {
    /// The storage contract's backend: memory, or segment files on any file system.
    pub(crate) backend: Box<dyn StoreBackend>,
    pub(crate) catalog: Catalog,
    pub(crate) catalog_head: Option<ChainHash>,
    pub(crate) heads: HashMap<StreamId, Heads>,
    /// Write sequence number of the last batch written (see [`crate::commit`]).
    pub(crate) written_seq: u64,
    /// Writes awaiting a group commit sync, in `seq` order.
    pub(crate) pending: VecDeque<PendingWrite>,
    /// Each named stream's Merkle tree ([`crate::merkle`]).
    pub(crate) merkle: TreeWorker,
    /// Batches written but not yet synced (group commit, `Unsynced`). They reach the trees
    /// only once durable, so tree files never hold a leaf a crash can take from the log: their
    /// length is evidence of durable events (module `lost`).
    pub(crate) tree_backlog: TreeBacklog,
    /// The background sync of unsynced batches (`Durability::Unsynced`, [`crate::writeback`]).
    pub(crate) writeback: crate::writeback::Writeback,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("catalog", &self.catalog)
            .field("heads", &self.heads)
            .field("written_seq", &self.written_seq)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Records the running writeback if it has finished (or once it has, when `wait`): on
    /// success the segments are durable as far as it synced them and its batches go to the
    /// trees. `None` when none finished; the caller stops the store on an error.
    pub(crate) fn record_writeback(
        &mut self,
        wait: bool,
    ) -> Option<std::result::Result<(), kimberlite_storage::StorageError>> {
        let (mark, (syncs, outcome)) = self.writeback.finished(wait)?;
        if outcome.is_ok() {
            self.synced(mark, &syncs);
        }
        Some(outcome)
    }

    /// `syncs`, taken when the batches waiting for a sync ended at `mark`, all succeeded: the
    /// segments are durable as far as they took them, and the batches before `mark` go to
    /// the trees.
    pub(crate) fn synced(&mut self, mark: u64, syncs: &[kimberlite_storage::backend::SegmentSync]) {
        self.backend.sync_finished(syncs);
        self.tree_backlog.submit_before(mark, &mut self.merkle);
    }

    /// The name of a user stream, or [`Error::UnknownStream`].
    pub(crate) fn name_of(&self, id: StreamId) -> Result<&str> {
        self.catalog
            .name(id)
            .ok_or(Error::UnknownStream { stream: id })
    }
}

impl Drop for State {
    /// The tree worker finishes its files before the backend (declared first, so dropped
    /// first otherwise) releases the store's lock: no other open sees half-written trees.
    fn drop(&mut self) {
        self.merkle.shutdown();
    }
}

/// Batches that wait for a sync before they reach the Merkle trees: `(stream, first offset,
/// events)`, in append order, and their payload bytes.
#[derive(Debug, Default)]
pub(crate) struct TreeBacklog {
    batches: std::collections::VecDeque<(StreamId, u64, Vec<bytes::Bytes>)>,
    bytes: u64,
    /// Batches ever pushed, and ever handed to the trees: a sync that runs outside the write
    /// lock hands over only those pushed before it began ([`Self::mark`]).
    pushed: u64,
    submitted: u64,
}

impl TreeBacklog {
    /// Payload bytes held under `Unsynced` before an append syncs the log itself, so that the
    /// backlog's memory stays bounded when a caller never calls `sync`.
    pub(crate) const UNSYNCED_BYTES_MAX: u64 = 64 << 20;

    pub(crate) fn push(&mut self, stream: StreamId, first_offset: u64, events: Vec<bytes::Bytes>) {
        self.bytes += payload_bytes(&events);
        self.batches.push_back((stream, first_offset, events));
        self.pushed += 1;
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Hands every batch to `trees`, which may then write them: call only once they are durable.
    pub(crate) fn submit_to(&mut self, trees: &mut TreeWorker) {
        self.submit_before(self.pushed, trees);
    }

    /// Where the backlog ends now: a sync that began here covers the batches before it.
    pub(crate) fn mark(&self) -> u64 {
        self.pushed
    }

    /// Hands `trees` the batches pushed before `mark` that are still here (a sync that began
    /// at `mark` made them durable; another sync may have handed some over meanwhile).
    pub(crate) fn submit_before(&mut self, mark: u64, trees: &mut TreeWorker) {
        while self.submitted < mark {
            let Some((stream, first_offset, events)) = self.batches.pop_front() else {
                break;
            };
            self.submitted += 1;
            self.bytes = self.bytes.saturating_sub(payload_bytes(&events));
            trees.submit(stream, first_offset, events);
        }
    }

    /// Takes every batch out (to hand over once a sync that began now ends), counting them
    /// as handed over.
    pub(crate) fn take(&mut self) -> TreeBacklog {
        let taken = TreeBacklog {
            batches: std::mem::take(&mut self.batches),
            bytes: std::mem::take(&mut self.bytes),
            pushed: self.pushed,
            submitted: self.submitted,
        };
        self.submitted = self.pushed;
        taken
    }
}

fn payload_bytes(events: &[bytes::Bytes]) -> u64 {
    events.iter().map(|event| event.len() as u64).sum()
}
