//! Merkle proofs over a stream's events: tree heads, inclusion and consistency proofs, and a
//! check of the stored tree against the log (see [`crate::merkle`] for the files).
//!
//! Proofs cover *durable* events only: the tree size of [`Kimberlite::tree_head`] is the
//! stream's durable next offset, as readers see it. Verification is in `kimberlite_proof`
//! (pure functions, usable without a store).
//!
//! Kept: the tree answers only for what the log holds durably, and every proof is exactly
//! RFC 9162's. Dropped: proofs for events not yet durable (a reader could not fetch them).
//!
//! # No proof from a damaged tree
//!
//! Proofs are made of nodes read from the side files, which nothing protects (a flipped bit
//! there made `prove` print a proof that failed against a valid signed checkpoint). So each
//! proof and tree head is checked before it is handed out, and refused with
//! [`Error::TreeDamaged`] (stream, what was asked for, why) when it fails:
//!
//! - The root it is checked against is the tree's in-memory frontier: hashed from the log's
//!   own events for everything appended since open, and read from the side files only at
//!   open, where it is checked against the nodes below it and then, before the first answer,
//!   against the frontier recomputed from the log (module `tree_trust`). A root folded from
//!   the side files instead would move with a damaged node and agree with a proof that read
//!   it.
//! - A tree head or a proof at the frontier's size uses that root; at a smaller size the
//!   root folded from the side files is first proved consistent with the frontier's root,
//!   which every node of that root takes part in.
//! - An inclusion proof must lead from its stored leaf to that root; a consistency proof
//!   from its old root to it. Cost: the proof's own O(log n) hashes again, and O(log n)
//!   reads and hashes more at a size below the frontier's.
//!
//! `verify` and `check_tree` compare the stored tree with the log instead, so they read the
//! stored head unchecked (`stored_tree_head_in`): a check there would turn the damage they
//! report into an error.

use kimberlite_proof::{Hash, NodeSource, RangeError};
use kimberlite_types::{Offset, StreamId};

use crate::error::{Error, Result, TreeEvidence};
use std::sync::MutexGuard;

use crate::merkle::{StreamTree, TreeError, Trees};
use crate::state::State;
use crate::store::Kimberlite;

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

/// A complete node of a stream's Merkle tree: `(level, index)` is the hash of the events at
/// offsets `index * 2^level ..= (index + 1) * 2^level - 1`; level 0 holds the leaves. Node
/// `index` of level `level` is stored at byte `32 * index` of `level-NN.hashes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TreeNode {
    /// The level (0 for leaves).
    pub level: u8,
    /// The node's index within its level.
    pub index: u64,
}

impl TreeNode {
    /// The first offset the node covers.
    #[must_use]
    pub fn first_offset(&self) -> u64 {
        self.index.saturating_mul(self.width())
    }

    /// The last offset the node covers: its hash is complete once that event is hashed.
    #[must_use]
    pub fn last_offset(&self) -> u64 {
        self.first_offset().saturating_add(self.width() - 1)
    }

    /// Byte position of the node in its level's file.
    #[must_use]
    pub fn file_position(&self) -> u64 {
        self.index.saturating_mul(32)
    }

    fn width(&self) -> u64 {
        1u64 << self.level.min(63)
    }

    /// True when a recomputation from the log completes `self` before `other`: it ends at an
    /// earlier offset, or at the same one lower in the tree.
    pub(crate) fn completes_before(&self, other: &TreeNode) -> bool {
        (self.last_offset(), self.level) < (other.last_offset(), other.level)
    }
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
    /// The first stored node, leaf or interior, that differs from the node recomputed from
    /// the log, in the order the recomputation completes them ([`TreeNode::last_offset`],
    /// then the lower level first), if any. A leaf here is `first_stale_leaf` when no interior
    /// node is completed before it; an interior node here with no stale leaf below it is
    /// damage in the side file itself.
    pub first_stale_node: Option<TreeNode>,
    /// The stored tree's size and root.
    pub stored: TreeHead,
}

impl TreeCheck {
    /// True when the stored tree is exactly the tree of the log: every stored node the log's
    /// events complete, the size and the root.
    #[must_use]
    pub fn tree_matches_log(&self) -> bool {
        self.first_stale_leaf.is_none()
            && self.first_stale_node.is_none()
            && self.stored.tree_size == self.log_size
            && self.stored.root == self.log_root
    }
}

/// The tree of stream `id` in `trees`, usable (side files not failed).
pub(crate) fn stream_tree<'t>(
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

pub(crate) fn tree_error(name: &str, error: TreeError) -> Error {
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
    pub(crate) fn durable_size(&self, id: StreamId) -> u64 {
        self.heads
            .get(&id)
            .map_or(0, |heads| heads.durable.next_offset.as_u64())
    }
}

/// Why a tree's answer is refused.
pub(crate) enum Refusal {
    /// The tree cannot answer: a range error, unreadable or failed side files.
    Tree(TreeError),
    /// What the side files gave does not lead to the trusted root.
    Damaged(String),
}

impl From<TreeError> for Refusal {
    fn from(error: TreeError) -> Self {
        Refusal::Tree(error)
    }
}

impl From<RangeError> for Refusal {
    fn from(error: RangeError) -> Self {
        Refusal::Tree(TreeError::Range(error))
    }
}

/// What a refusal of `evidence` from stream `id`'s tree is to the caller.
pub(crate) fn refused(name: &str, id: StreamId, evidence: TreeEvidence, refusal: Refusal) -> Error {
    match refusal {
        Refusal::Tree(error) => tree_error(name, error),
        Refusal::Damaged(reason) => Error::TreeDamaged {
            name: name.to_owned(),
            stream: id,
            evidence,
            reason,
        },
    }
}

/// The root of the first `size` leaves of `tree`, checked against the root of the tree's
/// frontier (see the module docs for why that one is trusted): read from the frontier itself
/// when `size` is the tree's size, otherwise from the side files and then proved consistent
/// with the frontier's root (O(log n) reads and hashes).
pub(crate) fn trusted_root(tree: &StreamTree, size: u64) -> Result<Hash, Refusal> {
    if let Some(reason) = tree.damage() {
        return Err(Refusal::Damaged(reason.to_owned()));
    }
    let (full_size, full_root) = (tree.size(), tree.root());
    if size == full_size {
        return Ok(full_root);
    }
    let root = kimberlite_proof::root_at(tree, size)?;
    if size == 0 {
        return Ok(root);
    }
    let proof = kimberlite_proof::consistency_proof(tree, size, full_size)?;
    kimberlite_proof::verify_consistency(size, full_size, &root, &full_root, &proof).map_err(
        |error| {
            Refusal::Damaged(format!(
                "the stored nodes of the tree of {size} events do not lead to the root of \
                 the tree of {full_size} ({error})"
            ))
        },
    )?;
    Ok(root)
}

impl Kimberlite {
    /// The Merkle tree head of stream `id` over its durable events, checked against the
    /// root the store holds in memory (see the module docs). O(1) once the tree worker has
    /// hashed the stream's last batch and that batch is durable; O(log n) otherwise.
    ///
    /// Errors: [`Error::TreeDamaged`] when the side files gave the root at open, or the
    /// nodes it is made of, and they disagree with what lies below them;
    /// [`Error::TreeUnavailable`] when the side files failed or trees are disabled.
    pub fn tree_head(&self, id: StreamId) -> Result<TreeHead> {
        self.trust_tree(id)?;
        let state = self.read_state();
        let name = state.name_of(id)?;
        let size = state.durable_size(id);
        if size == 0 {
            return Self::stored_tree_head_in(&state, id);
        }
        let trees = Self::trees(&state, id, name, size)?;
        let tree = stream_tree(&trees, id, name, size)?;
        let root = trusted_root(tree, size).map_err(|refusal| {
            refused(name, id, TreeEvidence::Head { tree_size: size }, refusal)
        })?;
        Ok(TreeHead {
            tree_size: size,
            root,
        })
    }

    /// The tree head as the side files give it, unchecked, under a lock the caller holds:
    /// what `verify` and `check_tree` compare with the log (a check here would turn the
    /// damage they report into an error).
    pub(crate) fn stored_tree_head_in(state: &State, id: StreamId) -> Result<TreeHead> {
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

    /// Proof that event `offset` is in the tree of `tree_size` events: O(log n) node reads,
    /// and as many hashes to check it against the trusted root before it is handed out.
    ///
    /// Errors: [`Error::TreeRange`] when `offset >= tree_size` or `tree_size` is past the
    /// stream's durable end; [`Error::TreeDamaged`] when the proof read from the side files
    /// does not lead to the root (a damaged node on its path, or a damaged root);
    /// [`Error::TreeUnavailable`] when the side files failed.
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
        self.trust_tree(id)?;
        let state = self.read_state();
        let name = state.name_of(id)?;
        let trees = Self::trees(&state, id, name, tree_size)?;
        let tree = stream_tree(&trees, id, name, tree_size)?;
        let evidence = TreeEvidence::Inclusion { offset, tree_size };
        let offset = offset.as_u64();
        let proof = || -> Result<InclusionProof, Refusal> {
            // Range errors first, so that a bad request is never reported as damage.
            let hashes = kimberlite_proof::inclusion_proof(tree, offset, tree_size)?;
            let leaf_hash = tree.node(0, offset)?;
            let root = trusted_root(tree, tree_size)?;
            kimberlite_proof::verify_inclusion(&leaf_hash, offset, tree_size, &hashes, &root)
                .map_err(|error| {
                    Refusal::Damaged(format!(
                        "the stored leaf and path do not lead to the tree's root ({error})"
                    ))
                })?;
            Ok(InclusionProof {
                offset,
                tree_size,
                root,
                leaf_hash,
                hashes,
            })
        };
        proof().map_err(|refusal| refused(name, id, evidence, refusal))
    }

    /// Proof that the tree of `new_size` events extends the tree of `old_size` events
    /// (`0 < old_size <= new_size <= ` the durable size), checked before it is handed out:
    /// the new root is the trusted one, and the proof must lead from the old root to it.
    ///
    /// Errors: as [`Self::inclusion_proof`].
    pub fn consistency_proof(
        &self,
        id: StreamId,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof> {
        self.trust_tree(id)?;
        let state = self.read_state();
        let name = state.name_of(id)?;
        let trees = Self::trees(&state, id, name, new_size)?;
        let tree = stream_tree(&trees, id, name, new_size)?;
        let evidence = TreeEvidence::Consistency { old_size, new_size };
        let proof = || -> Result<ConsistencyProof, Refusal> {
            let hashes = kimberlite_proof::consistency_proof(tree, old_size, new_size)?;
            let old_root = kimberlite_proof::root_at(tree, old_size)?;
            let new_root = trusted_root(tree, new_size)?;
            kimberlite_proof::verify_consistency(old_size, new_size, &old_root, &new_root, &hashes)
                .map_err(|error| {
                    Refusal::Damaged(format!(
                        "the stored nodes do not lead from the old root to the new one ({error})"
                    ))
                })?;
            Ok(ConsistencyProof {
                old_size,
                old_root,
                new_size,
                new_root,
                hashes,
            })
        };
        proof().map_err(|refusal| refused(name, id, evidence, refusal))
    }

    /// The trees, once the worker has caught up with stream `id`, for a proof at
    /// `tree_size` (checked against the durable size).
    pub(crate) fn trees<'s>(
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
