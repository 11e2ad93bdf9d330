//! A stream's Merkle tree recomputed from its log and compared with the stored tree (the
//! side files are not trusted): [`Kimberlite::check_tree`], and the tree half of
//! [`Kimberlite::verify`].
//!
//! [`TreeRecompute`] takes the events in offset order, from wherever they come: `check_tree`
//! reads them ([`Kimberlite::events`]); `verify` is handed them by the storage walk that
//! verifies the chain (`verify_stream_with`), so it reads and decodes each record once, where
//! it used to verify the chain and then read the whole stream again for the tree. Only the
//! durable events count (the tree covers those), and a tree is only compared when the walk
//! succeeded.

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

    /// Events taken so far (the offset the next one must have).
    pub(crate) fn size(&self) -> u64 {
        self.frontier.size()
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
    (first..)
        .zip(leaves)
        .take_while(|(offset, _)| *offset < stored_size)
        .find(|(offset, leaf)| tree.and_then(|t| t.node(0, *offset).ok()) != Some(**leaf))
        .map(|(offset, _)| offset)
}

impl Kimberlite {
    /// Recomputes stream `id`'s tree from its log (every event is read and re-hashed: O(n))
    /// and compares it with the stored tree; also returns the log's roots at `sizes` (those
    /// the log reaches). What `audit` relies on, since the side files are not trusted;
    /// [`Kimberlite::verify`] does the same in the walk that verifies the chain.
    pub fn check_tree(&self, id: StreamId, sizes: &[u64]) -> Result<TreeCheck> {
        let mut recompute = TreeRecompute::new(id, self.tree_head(id)?, sizes);
        let mut events = self.events(id, Offset::ZERO);
        while let Some(event) = events.next().transpose()? {
            debug_assert_eq!(event.offset.as_u64(), recompute.size());
            if recompute.push(&event.payload) {
                recompute.compare_chunk(&self.read_state().merkle);
            }
        }
        Ok(recompute.finish(&self.read_state().merkle))
    }
}
