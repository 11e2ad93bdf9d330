//! Merkle proofs over a stream's events: tree heads, inclusion and consistency proofs, and a
//! check of the stored tree against the log (see [`crate::merkle`] for the files).
//!
//! Proofs cover *durable* events only: the tree size of [`Kimberlite::tree_head`] is the
//! stream's durable next offset, as readers see it. Verification is in `kimberlite_proof`
//! (pure functions, usable without a store).
//!
//! Kept: the tree answers only for what the log holds durably, and every proof is exactly
//! RFC 9162's. Dropped: proofs for events not yet durable (a reader could not fetch them).

use kimberlite_proof::{Hash, NodeSource, RangeError};
use kimberlite_types::{Offset, StreamId};

use crate::error::{Error, Result};
use std::sync::MutexGuard;

use crate::merkle::{StreamTree, TreeError, Trees};
use crate::store::{Kimberlite, State};

/// A stream's Merkle tree head: its size (number of events) and RFC 9162 root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of events the tree covers (= the stream's durable next offset).
    pub tree_size: u64,
    /// The tree's root.
    pub root: Hash,
}

/// An inclusion proof: event `offset` is leaf `offset` of the tree of `tree_size` with `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The event's offset (= leaf index).
    pub offset: u64,
    /// The tree size proved against.
    pub tree_size: u64,
    /// That tree's root.
    pub root: Hash,
    /// The event's leaf hash.
    pub leaf_hash: Hash,
    /// The RFC 9162 path, leaf to root.
    pub hashes: Vec<Hash>,
}

/// A consistency proof: the tree of `new_size` extends the tree of `old_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The old tree size.
    pub old_size: u64,
    /// The old tree's root.
    pub old_root: Hash,
    /// The new tree size.
    pub new_size: u64,
    /// The new tree's root.
    pub new_root: Hash,
    /// The RFC 9162 consistency proof.
    pub hashes: Vec<Hash>,
}

/// What [`Kimberlite::check_tree`] found by recomputing a stream's tree from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeCheck {
    /// Events in the log (durable).
    pub log_size: u64,
    /// The root recomputed from the log.
    pub log_root: Hash,
    /// The roots recomputed from the log at the sizes asked for that the log reaches, in
    /// increasing size.
    pub roots_at: Vec<(u64, Hash)>,
    /// The first offset whose stored leaf hash differs from the log's event, if any.
    pub first_stale_leaf: Option<u64>,
    /// The stored tree's size and root.
    pub stored: TreeHead,
}

impl TreeCheck {
    /// True when the stored tree is exactly the tree of the log.
    #[must_use]
    pub fn tree_matches_log(&self) -> bool {
        self.first_stale_leaf.is_none()
            && self.stored.tree_size == self.log_size
            && self.stored.root == self.log_root
    }
}

/// The tree of stream `id` in `trees`, usable (side files not failed).
fn stream_tree<'t>(
    trees: &'t Trees,
    id: StreamId,
    name: &str,
    tree_size: u64,
) -> Result<&'t StreamTree> {
    let tree = trees.get(id).ok_or_else(|| Error::TreeRange {
        name: name.to_owned(),
        source: RangeError::TooLarge {
            tree_size,
            available: 0,
        },
    })?;
    tree.check().map_err(|e| tree_error(name, e))?;
    Ok(tree)
}

fn tree_error(name: &str, error: TreeError) -> Error {
    match error {
        TreeError::Range(source) => Error::TreeRange {
            name: name.to_owned(),
            source,
        },
        other => Error::TreeUnavailable {
            name: name.to_owned(),
            reason: other.to_string(),
        },
    }
}

fn disabled(name: &str) -> Error {
    Error::TreeUnavailable {
        name: name.to_owned(),
        reason: "Merkle trees are disabled in this store's Config".to_owned(),
    }
}

impl State {
    fn durable_size(&self, id: StreamId) -> u64 {
        self.heads
            .get(&id)
            .map_or(0, |heads| heads.durable.next_offset.as_u64())
    }
}

impl Kimberlite {
    /// The Merkle tree head of stream `id` over its durable events. O(1) once the tree
    /// worker has hashed the stream's last batch.
    pub fn tree_head(&self, id: StreamId) -> Result<TreeHead> {
        Self::tree_head_in(&self.read_state(), id)
    }

    /// [`Self::tree_head`] under a lock the caller holds.
    pub(crate) fn tree_head_in(state: &State, id: StreamId) -> Result<TreeHead> {
        let name = state.name_of(id)?;
        let size = state.durable_size(id);
        if size == 0 {
            if !state.merkle.enabled() {
                return Err(disabled(name));
            }
            return Ok(TreeHead {
                tree_size: 0,
                root: kimberlite_proof::empty_root(),
            });
        }
        let trees = Self::trees(state, id, name, size)?;
        let tree = stream_tree(&trees, id, name, size)?;
        let root = if tree.size() == size {
            tree.root()
        } else {
            kimberlite_proof::root_at(tree, size).map_err(|e| tree_error(name, e))?
        };
        Ok(TreeHead {
            tree_size: size,
            root,
        })
    }

    /// Proof that event `offset` is in the tree of `tree_size` events: O(log n) node reads.
    ///
    /// Errors: [`Error::TreeRange`] when `offset >= tree_size` or `tree_size` is past the
    /// stream's durable end; [`Error::TreeUnavailable`] when the side files failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use kimberlite::{proof, ExpectedOffset, Kimberlite};
    /// let store = Kimberlite::in_memory();
    /// let id = store.create_stream("audit")?;
    /// store.append(id, ["a", "b", "c"], ExpectedOffset::NoStream)?;
    /// let head = store.tree_head(id)?; // what a signed checkpoint carries
    /// let included = store.inclusion_proof(id, 1.into(), head.tree_size)?;
    /// // The verifier recomputes the leaf from the event itself and needs no store:
    /// let leaf = proof::event_leaf_hash(1, b"b");
    /// proof::verify_inclusion(&leaf, 1, head.tree_size, &included.hashes, &head.root)
    ///     .expect("valid");
    /// # Ok::<(), kimberlite::Error>(())
    /// ```
    pub fn inclusion_proof(
        &self,
        id: StreamId,
        offset: Offset,
        tree_size: u64,
    ) -> Result<InclusionProof> {
        let state = self.read_state();
        let name = state.name_of(id)?;
        let trees = Self::trees(&state, id, name, tree_size)?;
        let tree = stream_tree(&trees, id, name, tree_size)?;
        let offset = offset.as_u64();
        let error = |e| tree_error(name, e);
        let hashes = kimberlite_proof::inclusion_proof(tree, offset, tree_size).map_err(error)?;
        let leaf_hash = tree.node(0, offset).map_err(error)?;
        let root = kimberlite_proof::root_at(tree, tree_size).map_err(error)?;
        Ok(InclusionProof {
            offset,
            tree_size,
            root,
            leaf_hash,
            hashes,
        })
    }

    /// Proof that the tree of `new_size` events extends the tree of `old_size` events
    /// (`0 < old_size <= new_size <= ` the durable size).
    pub fn consistency_proof(
        &self,
        id: StreamId,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof> {
        let state = self.read_state();
        let name = state.name_of(id)?;
        let trees = Self::trees(&state, id, name, new_size)?;
        let tree = stream_tree(&trees, id, name, new_size)?;
        let error = |e| tree_error(name, e);
        let hashes =
            kimberlite_proof::consistency_proof(tree, old_size, new_size).map_err(error)?;
        Ok(ConsistencyProof {
            old_size,
            old_root: kimberlite_proof::root_at(tree, old_size).map_err(error)?,
            new_size,
            new_root: kimberlite_proof::root_at(tree, new_size).map_err(error)?,
            hashes,
        })
    }

    /// The trees, once the worker has caught up with stream `id`, for a proof at
    /// `tree_size` (checked against the durable size).
    fn trees<'s>(
        state: &'s State,
        id: StreamId,
        name: &str,
        tree_size: u64,
    ) -> Result<MutexGuard<'s, Trees>> {
        if !state.merkle.enabled() {
            return Err(disabled(name));
        }
        let available = state.durable_size(id);
        if tree_size > available {
            return Err(Error::TreeRange {
                name: name.to_owned(),
                source: RangeError::TooLarge {
                    tree_size,
                    available,
                },
            });
        }
        state.merkle.wait(id).map_err(|e| tree_error(name, e))
    }
}
