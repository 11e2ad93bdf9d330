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
//!
//! Every stored node the recomputation completes is compared, at every level: the leaves
//! and the interior nodes ([`Frontier::push`] tells each one), a chunk of [`CHECK_CHUNK`]
//! leaves at a time with one read per level and chunk (about twice the bytes the leaves alone
//! took, and a read per level instead of one). Comparing only the leaves, and the root
//! through the size and root check, left a flipped bit in any interior node off the right
//! edge unseen, while proofs read those nodes. Kept: the first stale leaf, as before; added:
//! the first stale node of any level (`TreeCheck::first_stale_node`). Dropped: nothing; the
//! nodes of a chunk wait in memory until it is compared (about 4,096 hashes).
//!
//! The nodes compared are below the tree size the check started at, so a comparison reads the
//! stored trees as they are, without waiting for the tree worker (which may have stopped). A
//! comparison that cannot read them (a panicked tree update poisoned them) fails the whole
//! check with [`crate::Error::TreeUnavailable`]: those nodes were never compared, and used to
//! count as matching.

use std::sync::mpsc;

use bytes::Bytes;
use kimberlite_proof::{Frontier, Hash, NodeSource};
use kimberlite_types::{Offset, StreamId};

use crate::error::Result;
use crate::merkle::{StreamTree, TreeError};
use crate::merkle_worker::TreeWorker;
use crate::proofs::{tree_error, TreeCheck, TreeHead, TreeNode};
use crate::store::Kimberlite;

/// Leaves compared per lock of the stored trees.
const CHECK_CHUNK: usize = 4096;

/// The nodes of one level that the leaves of the current chunk completed: `first` and the
/// ones after it (a level completes its nodes in index order).
#[derive(Debug, Default)]
struct LevelNodes {
    first: u64,
    hashes: Vec<Hash>,
}

/// The tree of a stream's events so far, fed one event at a time, and every node it
/// completes (leaves and interior nodes) compared with the stored ones a chunk at a time.
pub(crate) struct TreeRecompute {
    id: StreamId,
    stored: TreeHead,
    frontier: Frontier,
    /// Per level, the nodes completed since the last comparison.
    chunk: Vec<LevelNodes>,
    chunk_leaves: usize,
    first_stale_leaf: Option<u64>,
    first_stale_node: Option<TreeNode>,
    /// Why some completed nodes could not be compared (the stored trees could not be read):
    /// the check then fails instead of reporting them as matching.
    uncompared: Option<String>,
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
            chunk: Vec::new(),
            chunk_leaves: 0,
            first_stale_leaf: None,
            first_stale_node: None,
            uncompared: None,
            sizes: sizes.to_vec(),
            roots_at: Vec::new(),
        }
    }

    /// Starts the recomputation from `frontier` instead of the empty tree: the tree kept at a
    /// retention cut (module `retention`), whose events below it are gone.
    pub(crate) fn starting_from(mut self, frontier: Frontier) -> Self {
        self.frontier = frontier;
        self
    }

    /// The stored tree's size: the stream's durable events.
    pub(crate) fn stored_size(&self) -> u64 {
        self.stored.tree_size
    }

    /// Takes the next event's payload; true when a chunk of nodes is ready for
    /// [`Self::compare_chunk`].
    fn push(&mut self, payload: &[u8]) -> bool {
        if self.sizes.contains(&self.frontier.size()) {
            self.roots_at
                .push((self.frontier.size(), self.frontier.root()));
        }
        let leaf = kimberlite_proof::event_leaf_hash(self.frontier.size(), payload);
        let chunk = &mut self.chunk;
        self.frontier.push(leaf, |level, index, hash| {
            let level = usize::from(level);
            if chunk.len() <= level {
                chunk.resize_with(level + 1, LevelNodes::default);
            }
            if let Some(nodes) = chunk.get_mut(level) {
                if nodes.hashes.is_empty() {
                    nodes.first = index;
                }
                nodes.hashes.push(hash);
            }
        });
        self.chunk_leaves += 1;
        self.chunk_leaves == CHECK_CHUNK
    }

    /// Takes event `offset` handed over by a walk: only the durable events count (the tree
    /// covers those), and each full chunk is handed to `compare` (which calls
    /// [`Self::compare_chunk`] with the store's trees).
    pub(crate) fn take(&mut self, offset: Offset, payload: &[u8], compare: &CompareChunk<'_>) {
        if offset.as_u64() < self.stored_size() && self.push(payload) {
            compare(self);
        }
    }

    /// Compares the nodes completed since the last call with the stored tree's: leaves
    /// until a stale leaf is found, every level until a stale node is (a damaged tree costs
    /// no more than an intact one, and both firsts are reported).
    pub(crate) fn compare_chunk(&mut self, merkle: &TreeWorker) {
        let want_leaf = self.first_stale_leaf.is_none();
        let want_node = self.first_stale_node.is_none();
        if self.chunk_leaves > 0 && (want_leaf || want_node) {
            let levels = if want_node { self.chunk.len() } else { 1 };
            match first_stale(merkle, self.id, self.chunk.get(..levels)) {
                Ok((leaf, node)) => {
                    if want_leaf {
                        self.first_stale_leaf = leaf;
                    }
                    if want_node {
                        self.first_stale_node = node;
                    }
                }
                Err(error) => {
                    self.uncompared.get_or_insert_with(|| error.to_string());
                }
            }
        }
        for level in &mut self.chunk {
            level.hashes.clear();
        }
        self.chunk_leaves = 0;
    }

    /// What the recomputation found; an error if some nodes could not be compared.
    pub(crate) fn finish(mut self, merkle: &TreeWorker) -> Result<TreeCheck, TreeError> {
        self.compare_chunk(merkle);
        if let Some(reason) = self.uncompared {
            return Err(TreeError::Failed(reason));
        }
        if self.sizes.contains(&self.frontier.size()) {
            self.roots_at
                .push((self.frontier.size(), self.frontier.root()));
        }
        self.roots_at.dedup();
        Ok(TreeCheck {
            log_size: self.frontier.size(),
            log_root: self.frontier.root(),
            roots_at: self.roots_at,
            first_stale_leaf: self.first_stale_leaf,
            first_stale_node: self.first_stale_node,
            stored: self.stored,
        })
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

/// The first stale leaf and the first stale node (in the order they were completed) among
/// `levels`, the nodes a chunk of the log's leaves completed, level by level. Each level's
/// stored nodes are read with one read.
fn first_stale(
    merkle: &TreeWorker,
    id: StreamId,
    levels: Option<&[LevelNodes]>,
) -> Result<(Option<u64>, Option<TreeNode>), TreeError> {
    // The nodes compared are below the size the check started at, which the trees held then:
    // no need to wait for the worker (which may have stopped since).
    let trees = merkle.trees_now()?;
    let tree = trees.get(id);
    let mut leaf = None;
    let mut first: Option<TreeNode> = None;
    for (level, nodes) in (0u8..).zip(levels.unwrap_or_default()) {
        let Some(index) = first_stale_in(tree, level, nodes) else {
            continue;
        };
        if level == 0 {
            leaf = Some(index);
        }
        let node = TreeNode { level, index };
        if first.is_none_or(|first| node.completes_before(&first)) {
            first = Some(node);
        }
    }
    Ok((leaf, first))
}

/// The index of the first of `nodes` (of `level`) whose stored node differs from it, or is
/// missing.
fn first_stale_in(tree: Option<&StreamTree>, level: u8, nodes: &LevelNodes) -> Option<u64> {
    if nodes.hashes.is_empty() {
        return None;
    }
    let first = nodes.first;
    let stored = tree.and_then(|t| t.nodes(level, first, nodes.hashes.len() as u64).ok());
    if let Some(stored) = &stored {
        let differs = stored.iter().zip(&nodes.hashes).position(|(s, n)| s != n);
        let position =
            differs.or_else(|| (stored.len() < nodes.hashes.len()).then_some(stored.len()));
        return position.map(|i| first + i as u64);
    }
    // The range could not be read: a node at a time, each that cannot be read stale.
    (first..)
        .zip(&nodes.hashes)
        .find(|(index, hash)| tree.and_then(|t| t.node(level, *index).ok()) != Some(**hash))
        .map(|(index, _)| index)
}

impl Kimberlite {
    /// Recomputes stream `id`'s tree from its log (every event is read and re-hashed: O(n))
    /// and compares it with the stored tree; also returns the log's roots at `sizes` (those
    /// the log reaches). What `audit` relies on, since the side files are not trusted;
    /// [`Kimberlite::verify`] does the same in the walk that verifies the chain.
    pub fn check_tree(&self, id: StreamId, sizes: &[u64]) -> Result<TreeCheck> {
        self.settle_unsynced_trees()?;
        let (name, stored) = {
            let state = self.read_state();
            let name = state.name_of(id)?.to_owned();
            (name, Self::stored_tree_head_in(&state, id)?)
        };
        let (first, start) = crate::retention::tree_start(&self.read_state(), id);
        let recompute = TreeRecompute::new(id, stored, sizes).starting_from(start);
        let durable = recompute.stored_size();
        // Each page takes the store's read lock, and so does each comparison: appends go on
        // between them.
        let compare = |tree: &mut TreeRecompute| tree.compare_chunk(&self.read_state().merkle);
        let (walked, recompute) = recompute_beside(recompute, &compare, durable, |on_batch| {
            let mut events = self.events(id, first);
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
        let finished = recompute.finish(&self.read_state().merkle);
        finished.map_err(|error| tree_error(&name, error))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Durability, Error, ExpectedOffset, Kimberlite};

    /// When the stored trees cannot be read in the middle of a verification (a tree update
    /// panicked and poisoned them), the nodes after that point were never compared: the
    /// verification fails as unable to check the tree, rather than reporting it intact.
    #[test]
    fn trees_that_cannot_be_read_mid_verify_fail_it_not_pass_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default().durability(Durability::Unsynced);
        let store = Kimberlite::open_with(dir.path(), config).unwrap();
        let id = store.create_stream("audit").unwrap();
        for first in (0..40_000u64).step_by(1_000) {
            let events: Vec<String> = (first..first + 1_000).map(|i| format!("e{i}")).collect();
            store.append(id, events, ExpectedOffset::Any).unwrap();
        }
        store.sync().unwrap();
        assert!(store.verify(id).unwrap().is_intact());
        let mut poisoned = false;
        let verified = store.verify_with(id, |_| {
            if !poisoned {
                store.read_state().merkle.poison_for_tests();
                poisoned = true;
            }
        });
        assert!(poisoned, "the walk told its progress");
        assert!(
            matches!(verified, Err(Error::TreeUnavailable { ref name, .. }) if name == "audit"),
            "{verified:?}"
        );
    }
}
