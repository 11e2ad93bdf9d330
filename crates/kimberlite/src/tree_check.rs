//! A stream's Merkle tree recomputed from its log and compared with the stored tree (the
//! side files are not trusted): [`Kimberlite::check_tree`], and the tree half of
//! [`Kimberlite::verify`].
//!
//! [`TreeRecompute`] takes the events in offset order, from wherever they come: `check_tree`
//! reads them ([`Kimberlite::events`]); `verify` is handed them by the storage walk that
//! verifies the chain (`verify_stream_piece`, a piece at a time), so it reads and decodes
//! each record once, where it used to verify the chain and then read the whole stream again
//! for the tree. Only the durable events count (the tree covers those), and a tree is only
//! compared when the walk succeeded.

use std::sync::mpsc;

use bytes::Bytes;
use kimberlite_proof::{Frontier, Hash, NodeSource};
use kimberlite_types::{Offset, StreamId};

use crate::error::Result;
use crate::merkle_worker::TreeWorker;
use crate::proofs::{TreeCheck, TreeHead};
use crate::store::Kimberlite;

/// Leaves compared per lock of the stored trees.
const CHECK_CHUNK: usize = 4096;

/// The tree of a stream's events so far, fed one event at a time, and its leaves compared
/// with the stored ones a chunk at a time.
pub(crate) struct TreeRecompute {
    id: StreamId,
    stored: TreeHead,
    frontier: Frontier,
    chunk: Vec<Hash>,
    first_stale_leaf: Option<u64>,
    sizes: Vec<u64>,
    roots_at: Vec<(u64, Hash)>,
}

impl TreeRecompute {
    /// Starts the recomputation of stream `id`'s tree, to compare with `stored`, noting the
    /// roots at `sizes` on the way.
    pub(crate) fn new(id: StreamId, stored: TreeHead, sizes: &[u64]) -> Self {
        Self {
            id,
            stored,
            frontier: Frontier::new(),
            chunk: Vec::with_capacity(CHECK_CHUNK),
            first_stale_leaf: None,
            sizes: sizes.to_vec(),
            roots_at: Vec::new(),
        }
    }

    /// The stored tree's size: the stream's durable events.
    pub(crate) fn stored_size(&self) -> u64 {
        self.stored.tree_size
    }

    /// Takes the next event's payload; true when a chunk of leaves is ready for
    /// [`Self::compare_chunk`].
    pub(crate) fn push(&mut self, payload: &[u8]) -> bool {
        if self.sizes.contains(&self.frontier.size()) {
            self.roots_at
                .push((self.frontier.size(), self.frontier.root()));
        }
        let leaf = kimberlite_proof::event_leaf_hash(self.frontier.size(), payload);
        self.frontier.push(leaf, |_, _, _| {});
        self.chunk.push(leaf);
        self.chunk.len() == CHECK_CHUNK
    }

    /// Takes event `offset` handed over by a walk: only the durable events count (the tree
    /// covers those), and each full chunk of leaves is handed to `compare` (which calls
    /// [`Self::compare_chunk`] with the store's trees).
    pub(crate) fn take(&mut self, offset: Offset, payload: &[u8], compare: &CompareChunk<'_>) {
        if offset.as_u64() < self.stored_size() && self.push(payload) {
            compare(self);
        }
    }

    /// Compares the leaves taken since the last call with the stored tree's.
    pub(crate) fn compare_chunk(&mut self, merkle: &TreeWorker) {
        if !self.chunk.is_empty() && self.first_stale_leaf.is_none() {
            let first = self.frontier.size() - self.chunk.len() as u64;
            self.first_stale_leaf =
                first_stale(merkle, self.id, first, &self.chunk, self.stored.tree_size);
        }
        self.chunk.clear();
    }

    /// What the recomputation found.
    pub(crate) fn finish(mut self, merkle: &TreeWorker) -> TreeCheck {
        self.compare_chunk(merkle);
        if self.sizes.contains(&self.frontier.size()) {
            self.roots_at
                .push((self.frontier.size(), self.frontier.root()));
        }
        self.roots_at.dedup();
        TreeCheck {
            log_size: self.frontier.size(),
            log_root: self.frontier.root(),
            roots_at: self.roots_at,
            first_stale_leaf: self.first_stale_leaf,
            stored: self.stored,
        }
    }
}

/// Compares a [`TreeRecompute`]'s full chunk of leaves with the stored tree: with the trees
/// at hand (`verify`, under the store's lock) or taking the lock for it (`check_tree`).
pub(crate) type CompareChunk<'a> = dyn Fn(&mut TreeRecompute) + Sync + 'a;

/// Streams of fewer events recompute their tree on the walking thread: starting a thread
/// costs more than it would save.
const BESIDE_MIN_EVENTS: u64 = 16_384;

/// Events `check_tree` hands to the tree thread at once.
const BESIDE_BATCH: usize = 1024;

/// Events in offset order, as a walk hands them over: `(offset, payload)`.
pub(crate) type EventBatch = Vec<(Offset, Bytes)>;

/// Runs `walk`, which hands the events it verifies or reads to its callback in offset order,
/// in batches, feeding `tree` with those events: on a thread of its own beside the walk when
/// the stream holds [`BESIDE_MIN_EVENTS`] or more (`events`), so that the leaf and node
/// hashes overlap the walk's reading, checking and chain hashing; on the walking thread
/// otherwise. Returns the walk's result and the tree fed with every event the walk handed
/// over, whatever the walk returned.
///
/// Why: the tree's hashing (a leaf hash per event and about one node hash) was a third of
/// a store `verify`'s time, on one core while the walk's other threads waited.
pub(crate) fn recompute_beside<T>(
    mut tree: TreeRecompute,
    compare: &CompareChunk<'_>,
    events: u64,
    walk: impl FnOnce(&mut dyn FnMut(EventBatch)) -> T,
) -> (T, TreeRecompute) {
    if events < BESIDE_MIN_EVENTS {
        let walked = walk(&mut |batch| {
            for (offset, payload) in batch {
                tree.take(offset, &payload, compare);
            }
        });
        return (walked, tree);
    }
    std::thread::scope(|scope| {
        // A few batches in flight: the walk never waits for the tree unless it is ahead.
        let (sender, receiver) = mpsc::sync_channel::<EventBatch>(4);
        let hasher = scope.spawn(move || {
            for batch in receiver {
                for (offset, payload) in batch {
                    tree.take(offset, &payload, compare);
                }
            }
            tree
        });
        let walked = walk(&mut |batch| {
            // The receiver lives until every batch is sent: it only ends with the sender.
            let _ = sender.send(batch);
        });
        drop(sender);
        let tree = match hasher.join() {
            Ok(tree) => tree,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (walked, tree)
    })
}

/// The first offset from `first` on whose stored leaf is not `leaves[i]` (leaves past the
/// stored tree's `stored_size` are not compared: the size check reports them).
fn first_stale(
    merkle: &TreeWorker,
    id: StreamId,
    first: u64,
    leaves: &[Hash],
    stored_size: u64,
) -> Option<u64> {
    let trees = merkle.wait(id).ok()?;
    let tree = trees.get(id);
    let compared = stored_size.saturating_sub(first).min(leaves.len() as u64);
    // One read for the chunk's stored leaves; a leaf at a time (each failure then stale) only
    // when that read fails.
    let stored = tree.and_then(|t| t.leaves(first, compared).ok());
    (first..)
        .zip(leaves)
        .take_while(|(offset, _)| *offset < stored_size)
        .find(|(offset, leaf)| {
            let stored_leaf = match &stored {
                Some(stored) => usize::try_from(offset - first)
                    .ok()
                    .and_then(|i| stored.get(i).copied()),
                None => tree.and_then(|t| t.node(0, *offset).ok()),
            };
            stored_leaf != Some(**leaf)
        })
        .map(|(offset, _)| offset)
}

impl Kimberlite {
    /// Recomputes stream `id`'s tree from its log (every event is read and re-hashed: O(n))
    /// and compares it with the stored tree; also returns the log's roots at `sizes` (those
    /// the log reaches). What `audit` relies on, since the side files are not trusted;
    /// [`Kimberlite::verify`] does the same in the walk that verifies the chain.
    pub fn check_tree(&self, id: StreamId, sizes: &[u64]) -> Result<TreeCheck> {
        let recompute = TreeRecompute::new(id, self.tree_head(id)?, sizes);
        let durable = recompute.stored_size();
        // Each page takes the store's read lock, and so does each comparison: appends go on
        // between them.
        let compare = |tree: &mut TreeRecompute| tree.compare_chunk(&self.read_state().merkle);
        let (walked, recompute) = recompute_beside(recompute, &compare, durable, |on_batch| {
            let mut events = self.events(id, Offset::ZERO);
            let mut batch = Vec::with_capacity(BESIDE_BATCH);
            while let Some(event) = events.next().transpose()? {
                batch.push((event.offset, event.payload));
                if batch.len() == BESIDE_BATCH {
                    on_batch(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(BESIDE_BATCH),
                    ));
                }
            }
            if !batch.is_empty() {
                on_batch(batch);
            }
            Ok::<(), crate::Error>(())
        });
        walked?;
        Ok(recompute.finish(&self.read_state().merkle))
    }
}
