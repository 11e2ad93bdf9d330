//! Each stream's Merkle tree (RFC 9162), kept beside the log so that proofs take O(log n)
//! reads.
//!
//! # Files
//!
//! ```text
//! <store>/merkle/<stream id, 20 digits>/level-00.hashes   leaf hashes, 32 bytes each
//!                                       level-01.hashes   complete nodes over 2 leaves
//!                                       ...               level k: one hash per 2^k leaves
//! ```
//!
//! Level `k` holds the complete nodes `(k, 0), (k, 1), ...` back to back, so node `i` is at
//! byte `32 * i`. Files only grow (a node never changes once complete). Each appended batch
//! is hashed into its leaves, which extend the in-memory [`Frontier`] (O(log n) per event,
//! O(1) amortised), by the store's tree worker thread (module `merkle_worker`), off the
//! append path. The new complete nodes are buffered and written when `FLUSH_NODES` (1,024) are
//! pending (a proof reads them from the buffer meanwhile), and when the store syncs or
//! closes. An in-memory store keeps every level in memory (64 bytes per event).
//!
//! # What is trusted
//!
//! Nothing: the files are derived from the log. On open each level is cut to the length the
//! log allows, missing nodes are recomputed from the level below, missing leaves are
//! re-hashed from the log, and a missing directory is rebuilt from scratch. The files are
//! never synced: a crash can lose or tear them, and reopening repairs them. Leaves are only
//! ever hashed from durable events (under group commit, once the group's sync finished), so
//! a leaves file longer than the log is evidence of lost events: the store reads it first
//! and leaves such a stream's files uncut (module `lost`).
//!
//! A file whose contents disagree with the log (a flipped bit, an edit, a file left from
//! another history) is not repaired, and is found three ways:
//!
//! - [`crate::Kimberlite::verify`] and [`crate::Kimberlite::check_tree`] (what `audit`
//!   runs) recompute the tree from the log and compare every stored node, leaves and
//!   interior nodes at every level ([`crate::TreeCheck::first_stale_node`]). O(n).
//! - On open, the frontier (the at most 64 complete nodes a root is made of) is read from the
//!   files, so it is checked: each interior node of it must be the hash of the two nodes
//!   below it, and a leaf of it (odd sizes) the leaf of the log's event. A frontier that
//!   fails makes every tree head and proof of the stream refused
//!   ([`crate::Error::TreeDamaged`]).
//! - That check cannot see damage that is consistent all the way up (a leaf or a node
//!   replaced and every ancestor recomputed, as anyone who can write the files can do). So
//!   the frontier read at open is compared with the one recomputed from a verified read of
//!   the log before the first tree head or proof of the stream (module `tree_trust`, once per
//!   stream per open, O(n)); a difference refuses them all, as above. After open the frontier
//!   only grows by hashing the log's events, so once compared it is the log's root.
//! - Every proof is checked against that root before it is handed out, so a damaged node a
//!   proof reads makes that proof refused, whenever the damage happened.
//!
//! Dropped: the log's record bytes, offsets and chain hashes are untouched (the tree is a
//! side structure), so `MemoryStorage` parity and the format of `docs/FORMAT.md` hold.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kimberlite_proof::{event_leaf_hash, Frontier, Hash, NodeSource, RangeError};
use kimberlite_types::StreamId;

pub(crate) use level::TreeError;
use level::{Level, HASH_BYTES};

use crate::store_fs::{file_len, open_or_create, Files, StoreFs};

mod cut;
mod frontier_check;
mod level;

/// Nodes buffered per level before they are written.
pub(crate) const FLUSH_NODES: usize = 1024;
/// Name of the directory under the store that holds the trees.
pub(crate) const MERKLE_DIR: &str = "merkle";

/// A stream's tree: frontier in memory, complete nodes in files (or only in memory).
#[derive(Default)]
pub(crate) struct StreamTree {
    frontier: Frontier,
    levels: Vec<Level>,
    /// The file system and directory of the level files; `None` for a tree in memory.
    files: Option<(Arc<dyn StoreFs>, PathBuf)>,
    failed: Option<String>,
    /// Why the frontier `open` read from the side files cannot be trusted, if it cannot.
    damaged: Option<String>,
    /// The frontier `open` read from the side files, until it is compared with the one
    /// recomputed from the log (module `tree_trust`); `None` once it is, or when nothing was
    /// read.
    unchecked: Option<Frontier>,
}

impl std::fmt::Debug for StreamTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTree")
            .field("size", &self.frontier.size())
            .field("dir", &self.files.as_ref().map(|(_, dir)| dir))
            .field("failed", &self.failed)
            .field("damaged", &self.damaged)
            .finish_non_exhaustive()
    }
}

impl StreamTree {
    /// An empty tree held in memory.
    fn in_memory() -> Self {
        Self::default()
    }

    /// Opens (or creates) the tree files in `dir` and reconciles them with a log of
    /// `log_size` events: returns the tree and the number of leaves it still needs from the
    /// log (the caller re-hashes events from `tree.size()` on).
    fn open(fs: Arc<dyn StoreFs>, dir: PathBuf, log_size: u64) -> std::io::Result<Self> {
        fs.create_dir_all(&dir)?;
        let level0 = dir.join(level_name(0));
        let stored = file_len(&*fs, &level0)
            .ok()
            .flatten()
            .map_or(0, |len| len / HASH_BYTES);
        let leaves = stored.min(log_size);
        let mut tree = Self {
            files: Some((Arc::clone(&fs), dir.clone())),
            ..Self::default()
        };
        // Levels 0..=top can hold nodes for `leaves` leaves; files above are stale.
        let top = (64 - leaves.leading_zeros()) as u8;
        for level in 0..=kimberlite_proof::tree::MAX_LEVEL {
            let path = dir.join(level_name(level));
            if level > top {
                if file_len(&*fs, &path)?.is_some() {
                    fs.remove_file(&path)?;
                }
                continue;
            }
            let mut file = open_or_create(&*fs, &path)?;
            let length = file.len_bytes()?;
            let written = length / HASH_BYTES;
            if length % HASH_BYTES != 0 {
                file.set_len(written * HASH_BYTES)?; // a torn last node
            }
            tree.levels.push(Level {
                file: Some(file),
                path,
                written,
                pending: Vec::new(),
            });
        }
        tree.reconcile(leaves)?;
        tree.frontier = Frontier::from_source(&tree, leaves).map_err(std::io::Error::other)?;
        Ok(tree)
    }

    /// Cuts every level to what `leaves` leaves allow and recomputes missing nodes.
    fn reconcile(&mut self, leaves: u64) -> std::io::Result<()> {
        for k in 0..self.levels.len() {
            let want = leaves >> k;
            let Some(level) = self.levels.get_mut(k) else {
                break;
            };
            if level.written > want {
                if let Some(file) = &mut level.file {
                    file.set_len(want * HASH_BYTES)?;
                }
                level.written = want;
            }
            if k == 0 {
                continue;
            }
            let have = self.levels.get(k).map_or(0, Level::len);
            for index in have..want {
                let left = self
                    .node(k as u8 - 1, 2 * index)
                    .map_err(std::io::Error::other)?;
                let right = self
                    .node(k as u8 - 1, 2 * index + 1)
                    .map_err(std::io::Error::other)?;
                if let Some(level) = self.levels.get_mut(k) {
                    level
                        .pending
                        .push(kimberlite_proof::node_hash(&left, &right));
                }
            }
        }
        self.flush()
    }

    pub(crate) fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub(crate) fn root(&self) -> Hash {
        self.frontier.root()
    }

    pub(crate) fn check(&self) -> Result<(), TreeError> {
        match &self.failed {
            Some(reason) => Err(TreeError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Why the frontier, hence every root, cannot be trusted: a node of it that `open` read
    /// from the side files disagrees with what lies below it. `None` when it can.
    pub(crate) fn damage(&self) -> Option<&str> {
        self.damaged.as_deref()
    }

    /// The frontier `open` read from the side files, while it has not been compared with
    /// the log's (module `tree_trust`).
    pub(crate) fn unchecked(&self) -> Option<&Frontier> {
        self.unchecked.as_ref()
    }

    /// Settles the frontier `open` read from the side files, once it has been compared with
    /// the log's (module `tree_trust`): `disagreement` says where they differ, if they do,
    /// and marks the tree damaged. Only the first settlement counts.
    pub(crate) fn settle(&mut self, disagreement: Option<String>) {
        if self.unchecked.take().is_some() && self.damaged.is_none() {
            self.damaged = disagreement;
        }
    }

    /// Appends leaf hashes (those of events `size()..`).
    pub(crate) fn push(&mut self, leaves: &[Hash]) {
        let levels = &mut self.levels;
        let files = self.files.as_ref();
        let mut failure = None;
        for leaf in leaves {
            self.frontier.push(*leaf, |level, _index, hash| {
                let k = usize::from(level);
                while levels.len() <= k {
                    let depth = levels.len() as u8;
                    let path = level_path(files.map(|(_, dir)| dir.as_path()), depth);
                    let file = match files {
                        Some((fs, _)) => match open_or_create(&**fs, &path) {
                            Ok(file) => Some(file),
                            Err(error) => {
                                failure = Some(format!("creating {}: {error}", path.display()));
                                None
                            }
                        },
                        None => None,
                    };
                    levels.push(Level {
                        file,
                        path,
                        written: 0,
                        pending: Vec::new(),
                    });
                }
                if let Some(level) = levels.get_mut(k) {
                    level.pending.push(hash);
                }
            });
        }
        let full = self
            .levels
            .iter()
            .any(|level| level.file.is_some() && level.pending.len() >= FLUSH_NODES);
        if full {
            if let Err(error) = self.flush() {
                failure = Some(format!("writing the tree files: {error}"));
            }
        }
        if let Some(reason) = failure {
            self.failed.get_or_insert(reason);
        }
    }

    /// Writes every buffered node and makes the level files durable: before a retention cut,
    /// below which the log can no longer rebuild them (module `retention`).
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.flush()?;
        for file in self
            .levels
            .iter_mut()
            .filter_map(|level| level.file.as_mut())
        {
            file.sync_data()?;
        }
        if let Some((fs, dir)) = &self.files {
            dir.ancestors()
                .take(3)
                .try_for_each(|dir| fs.sync_dir(dir))?;
        }
        Ok(())
    }

    /// Writes every buffered node to its file.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        for level in &mut self.levels {
            level.flush()?;
        }
        Ok(())
    }
}

fn level_path(dir: Option<&Path>, level: u8) -> PathBuf {
    dir.map(|dir| dir.join(level_name(level)))
        .unwrap_or_default()
}

/// The file name of a level's nodes.
pub(crate) fn level_name(level: u8) -> String {
    format!("level-{level:02}.hashes")
}

/// The directory of stream `id`'s tree in the store at `store`.
pub(crate) fn tree_dir(store: &Path, id: StreamId) -> PathBuf {
    stream_tree_dir(&store.join(MERKLE_DIR), id)
}

/// The directory of stream `id`'s tree under the trees' directory `root`.
fn stream_tree_dir(root: &Path, id: StreamId) -> PathBuf {
    root.join(format!("{:020}", id.as_u64()))
}

impl StreamTree {
    /// Nodes `first..first + count` of `level` (fewer past the level's end), read together.
    pub(crate) fn nodes(&self, level: u8, first: u64, count: u64) -> Result<Vec<Hash>, TreeError> {
        match self.levels.get(usize::from(level)) {
            Some(level) => level.get_range(first, count),
            None => Ok(Vec::new()),
        }
    }
}

impl NodeSource for StreamTree {
    type Error = TreeError;

    fn leaf_count(&self) -> u64 {
        // Equal to the frontier's size, except while `open` rebuilds the frontier.
        self.levels.first().map_or(0, Level::len)
    }

    fn node(&self, level: u8, index: u64) -> Result<Hash, TreeError> {
        match self.levels.get(usize::from(level)) {
            Some(nodes) => nodes.get(index),
            None => Err(TreeError::Range(RangeError::TooLarge {
                tree_size: (index + 1) << level,
                available: self.frontier.size(),
            })),
        }
    }
}

/// Every stream's tree.
#[derive(Debug, Default)]
pub(crate) struct Trees {
    trees: HashMap<StreamId, StreamTree>,
    /// The file system and the trees' directory; `None` for trees in memory.
    root: Option<(Arc<dyn StoreFs>, PathBuf)>,
    disabled: bool,
}

impl Trees {
    /// Trees held in memory only (none when `config` disables them).
    pub(crate) fn in_memory(config: &crate::Config) -> Self {
        Self {
            trees: HashMap::new(),
            root: None,
            disabled: !config.merkle_trees,
        }
    }

    /// Trees in `<store>/merkle/` on `fs`.
    pub(crate) fn on_disk(fs: Arc<dyn StoreFs>, store: &Path) -> Self {
        Self {
            trees: HashMap::new(),
            root: Some((fs, store.join(MERKLE_DIR))),
            disabled: false,
        }
    }

    /// False when the store's configuration disables trees.
    pub(crate) fn enabled(&self) -> bool {
        !self.disabled
    }

    /// Opens the tree of `stream` whose log has `log_size` events and checks the frontier
    /// it read from the side files (`log_leaf` gives the log's leaf hash of an event); returns
    /// the tree size it has (the caller feeds the remaining leaves with [`Trees::push`]).
    pub(crate) fn open_stream(
        &mut self,
        stream: StreamId,
        log_size: u64,
        log_leaf: impl FnOnce(u64) -> Option<Hash>,
    ) -> std::io::Result<u64> {
        let tree = match &self.root {
            Some((fs, root)) => {
                let dir = stream_tree_dir(root, stream);
                let mut tree = StreamTree::open(Arc::clone(fs), dir, log_size)?;
                tree.check_frontier(log_leaf);
                // Read from files anyone with write access can forge consistently: not
                // trusted until compared with the log (module `tree_trust`).
                if tree.size() > 0 {
                    tree.unchecked = Some(tree.frontier.clone());
                }
                tree
            }
            None => StreamTree::in_memory(),
        };
        let size = tree.size();
        self.trees.insert(stream, tree);
        Ok(size)
    }

    /// Starts the tree of `stream` in memory, leaving its files as they are: for a stream
    /// whose files are evidence of lost events (module `lost`). Proofs come from its log.
    pub(crate) fn open_stream_in_memory(&mut self, stream: StreamId) {
        self.trees.insert(stream, StreamTree::in_memory());
    }

    /// Extends the tree of `stream` with `leaves`; creates an empty tree first if needed.
    pub(crate) fn push(&mut self, stream: StreamId, leaves: &[Hash]) {
        if self.disabled {
            return;
        }
        let root = self.root.clone();
        let tree = self.trees.entry(stream).or_insert_with(|| {
            let mut tree = StreamTree::in_memory();
            if let Some((fs, root)) = root {
                match StreamTree::open(fs, stream_tree_dir(&root, stream), 0) {
                    Ok(opened) => tree = opened,
                    Err(error) => tree.failed = Some(error.to_string()),
                }
            }
            tree
        });
        tree.push(leaves);
    }

    pub(crate) fn get(&self, stream: StreamId) -> Option<&StreamTree> {
        self.trees.get(&stream)
    }

    /// Settles the frontier `open` read for `stream` ([`StreamTree::settle`]).
    pub(crate) fn settle(&mut self, stream: StreamId, disagreement: Option<String>) {
        if let Some(tree) = self.trees.get_mut(&stream) {
            tree.settle(disagreement);
        }
    }

    /// Makes the tree files of `stream` durable ([`StreamTree::sync`]).
    pub(crate) fn sync_stream(&mut self, stream: StreamId) -> std::io::Result<()> {
        self.trees.get_mut(&stream).map_or(Ok(()), StreamTree::sync)
    }
    /// Leaves in the tree of `stream` (0 when it has none).
    pub(crate) fn size(&self, stream: StreamId) -> u64 {
        self.trees.get(&stream).map_or(0, StreamTree::size)
    }

    /// Every stream's tree size.
    pub(crate) fn sizes(&self) -> HashMap<StreamId, u64> {
        self.trees
            .iter()
            .map(|(stream, tree)| (*stream, tree.size()))
            .collect()
    }

    /// Writes all buffered nodes (the store's sync and drop call this).
    pub(crate) fn flush(&mut self) {
        for tree in self.trees.values_mut() {
            if let Err(error) = tree.flush() {
                tree.failed
                    .get_or_insert(format!("writing the tree files: {error}"));
            }
        }
    }
}

impl Drop for Trees {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The leaf hashes of a batch whose first event is at `first_offset`.
pub(crate) fn leaf_hashes(first_offset: u64, events: &[Bytes]) -> Vec<Hash> {
    events
        .iter()
        .zip(first_offset..)
        .map(|(payload, offset)| event_leaf_hash(offset, payload))
        .collect()
}

/// Opens every named stream's tree when the store opens, and re-hashes from the log the
/// events the side files lack. A stream whose log cannot be read (damage) keeps the tree it
/// has: proofs past it fail, and `verify` reports the damage.
///
/// `streams` are the named streams with their log sizes (events written); the trees of those
/// `in_memory` are built from the log in memory, their files left untouched.
pub(crate) fn recover_trees(
    backend: &dyn kimberlite_storage::StoreBackend,
    streams: &[(StreamId, u64)],
    in_memory: &[StreamId],
    config: &crate::Config,
    files: Option<&Files>,
) -> crate::Result<Trees> {
    let mut trees = match files {
        Some(files) if config.merkle_trees => Trees::on_disk(Arc::clone(&files.fs), &files.dir),
        _ => return Ok(Trees::in_memory(config)),
    };
    for &(id, log_size) in streams {
        let cut = backend.prune_point(id);
        let log_leaf = |offset: u64| {
            if let Some(point) = cut.as_ref().filter(|p| offset < p.first_offset.as_u64()) {
                return cut::leaf_below_cut(point, offset);
            }
            let from = kimberlite_types::Offset::new(offset);
            let page = backend.read_from(id, from, 0).ok()?;
            page.first().map(|payload| event_leaf_hash(offset, payload))
        };
        let mut size = if in_memory.contains(&id) {
            trees.open_stream_in_memory(id);
            0
        } else {
            trees.open_stream(id, log_size, log_leaf).map_err(|error| {
                crate::Error::io(format!("opening the Merkle tree of stream {id}"), error)
            })?
        };
        while size < log_size {
            let from = kimberlite_types::Offset::new(size);
            let Ok(page) = backend.read_from(id, from, config.read_page_bytes) else {
                break;
            };
            if page.is_empty() {
                break;
            }
            let leaves = leaf_hashes(size, &page);
            trees.push(id, &leaves);
            size += leaves.len() as u64;
        }
        trees.flush();
    }
    Ok(trees)
}
