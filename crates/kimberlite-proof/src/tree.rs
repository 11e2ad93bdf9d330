//! Building trees and proofs: the compact frontier, the [`NodeSource`] interface, and proof
//! generation (RFC 9162 sections 2.1.3.1 and 2.1.4.1).
//!
//! # Node addresses
//!
//! A *complete node* is the root of a perfect subtree: `(level, index)` covers the leaves
//! `[index * 2^level, (index + 1) * 2^level)`; level 0 holds the leaf hashes. A tree of `n`
//! leaves has exactly `n >> level` complete nodes at each level, and they never change once
//! written, so a store can keep them in append-only files. Every hash a proof needs is either
//! a complete node or (on the tree's right edge) a fold of at most 64 complete nodes
//! ([`subtree_root`]).
//!
//! # Frontier
//!
//! [`Frontier`] is the compact form of a tree: one complete node per set bit of the size
//! (at most 64 hashes). Appending a leaf is O(log n) hashes in the worst case, O(1) amortised,
//! and reports the complete nodes it created so that a store can persist them.
//!
//! Kept from RFC 9162: `PATH` and `PROOF` exactly (same hashes, same order), computed
//! iteratively instead of recursively. Dropped: nothing; generation only needs complete nodes,
//! so any store that keeps them (files, tiles, memory) can implement [`NodeSource`].

use crate::hash::{empty_root, node_hash, Hash};

/// Largest level a tree of `u64` leaves can have.
pub const MAX_LEVEL: u8 = 63;

/// A request outside the tree: an index past its size, an old size above the new size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// An inclusion proof for a leaf that is not in the tree of that size.
    #[error("leaf index {index} is not in a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size asked for.
        tree_size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one (or from the empty tree).
    #[error("no consistency proof from tree size {old_size} to tree size {new_size}")]
    BadSizes {
        /// The old tree size.
        old_size: u64,
        /// The new tree size.
        new_size: u64,
    },
    /// A tree size above the number of leaves the source holds.
    #[error("tree size {tree_size} exceeds the {available} leaves available")]
    TooLarge {
        /// The tree size asked for.
        tree_size: u64,
        /// Leaves the source holds.
        available: u64,
    },
}

/// Where proof generation reads complete nodes from (memory, files, tiles).
pub trait NodeSource {
    /// The source's error; range errors are reported through it too.
    type Error: From<RangeError>;

    /// Number of leaves the source holds.
    fn leaf_count(&self) -> u64;

    /// The complete node `(level, index)`. Called only for nodes that exist: `(index + 1) <<
    /// level <= leaf_count()`.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// The compact form of a tree: the complete nodes for each set bit of its size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Complete nodes, left to right (largest first): `nodes[i]` covers the `i`-th set bit of
    /// `size` counted from the top.
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of a tree of `size` leaves from its complete nodes.
    pub fn from_source<S: NodeSource>(source: &S, size: u64) -> Result<Self, S::Error> {
        check_size(source, size)?;
        let mut nodes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..=MAX_LEVEL).rev() {
            if size & (1u64 << level) != 0 {
                nodes.push(source.node(level, start >> level)?);
                start += 1u64 << level;
            }
        }
        Ok(Self { size, nodes })
    }

    /// The frontier of a tree of `size` leaves from its complete nodes, largest first (as
    /// [`Self::nodes`] gives them); `None` unless there is one node per set bit of `size`.
    /// For a tree whose leaves below `size` are no longer at hand (retention): pushing the
    /// later leaves onto it gives every later root and node.
    #[must_use]
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Option<Self> {
        (nodes.len() == size.count_ones() as usize).then_some(Self { size, nodes })
    }

    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The complete nodes the root is made of, left to right (largest first): the `i`-th
    /// covers the `i`-th set bit of [`Self::size`] counted from the top.
    #[must_use]
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends a leaf hash; calls `created(level, index, hash)` for each complete node the
    /// append completes, the leaf itself (level 0) first.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push(&mut self, leaf: Hash, mut created: impl FnMut(u8, u64, Hash)) {
        assert!(self.size < u64::MAX, "a tree holds at most u64::MAX leaves");
        let index = self.size;
        created(0, index, leaf);
        let mut hash = leaf;
        let mut level = 0u8;
        // Each trailing one bit of the old size is a complete sibling to merge with.
        while (index >> level) & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            hash = node_hash(&left, &hash);
            level += 1;
            created(level, index >> level, hash);
        }
        self.nodes.push(hash);
        self.size += 1;
        debug_assert_eq!(self.nodes.len(), self.size.count_ones() as usize);
    }

    /// The tree's root hash (`SHA-256("")` for the empty tree).
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}

fn check_size<S: NodeSource>(source: &S, tree_size: u64) -> Result<(), S::Error> {
    let available = source.leaf_count();
    if tree_size > available {
        return Err(RangeError::TooLarge {
            tree_size,
            available,
        }
        .into());
    }
    Ok(())
}

/// The root of the subtree over leaves `[start, end)`, folded from its complete nodes; as
/// proofs use it, `start` is a multiple of the largest power of two not above `end - start`.
/// `start == end` gives the empty root.
pub fn subtree_root<S: NodeSource>(source: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let mut parts: Vec<Hash> = Vec::new();
    let mut position = start;
    while position < end {
        let alignment = if position == 0 {
            MAX_LEVEL
        } else {
            position.trailing_zeros().min(u32::from(MAX_LEVEL)) as u8
        };
        let remaining = end - position;
        let fit = (63 - remaining.leading_zeros()) as u8;
        let level = alignment.min(fit);
        parts.push(source.node(level, position >> level)?);
        position += 1u64 << level;
    }
    let mut parts = parts.into_iter().rev();
    let Some(last) = parts.next() else {
        return Ok(empty_root());
    };
    Ok(parts.fold(last, |right, left| node_hash(&left, &right)))
}

/// The root of the tree of the first `tree_size` leaves.
pub fn root_at<S: NodeSource>(source: &S, tree_size: u64) -> Result<Hash, S::Error> {
    check_size(source, tree_size)?;
    subtree_root(source, 0, tree_size)
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The inclusion proof `PATH(index, D[tree_size])`: sibling hashes from the leaf up.
pub fn inclusion_proof<S: NodeSource>(
    source: &S,
    index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, S::Error> {
    check_size(source, tree_size)?;
    if index >= tree_size {
        return Err(RangeError::IndexOutOfRange { index, tree_size }.into());
    }
    let mut path = Vec::new();
    let (mut start, mut size, mut m) = (0u64, tree_size, index);
    // Walk down from the root, noting the sibling at each split; reverse at the end.
    while size > 1 {
        let k = split_point(size);
        if m < k {
            path.push(subtree_root(source, start + k, start + size)?);
            size = k;
        } else {
            path.push(subtree_root(source, start, start + k)?);
            start += k;
            m -= k;
            size -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof `PROOF(old_size, D[new_size])` for `0 < old_size <= new_size`
/// (empty when the sizes are equal).
pub fn consistency_proof<S: NodeSource>(
    source: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, S::Error> {
    check_size(source, new_size)?;
    if old_size == 0 || old_size > new_size {
        return Err(RangeError::BadSizes { old_size, new_size }.into());
    }
    let mut proof = Vec::new();
    let (mut start, mut size, mut m, mut complete) = (0u64, new_size, old_size, true);
    // SUBPROOF(m, D[start:start+size], complete), iteratively; hashes collected top-down.
    while m != size {
        let k = split_point(size);
        if m <= k {
            proof.push(subtree_root(source, start + k, start + size)?);
            size = k;
        } else {
            proof.push(subtree_root(source, start, start + k)?);
            start += k;
            m -= k;
            size -= k;
            complete = false;
        }
    }
    if !complete {
        proof.push(subtree_root(source, start, start + size)?);
    }
    proof.reverse();
    Ok(proof)
}

/// A tree held in memory: every complete node at every level. For tests, tools and small
/// streams; a store keeps the same levels in files.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// The empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree over these leaf hashes.
    #[must_use]
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let levels = &mut self.levels;
        self.frontier.push(leaf, |level, index, hash| {
            let level = usize::from(level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            if let Some(nodes) = levels.get_mut(level) {
                debug_assert_eq!(nodes.len() as u64, index);
                nodes.push(hash);
            }
        });
    }

    /// The current root.
    #[must_use]
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

impl NodeSource for MemoryTree {
    type Error = RangeError;

    fn leaf_count(&self) -> u64 {
        self.frontier.size()
    }

    fn node(&self, level: u8, index: u64) -> Result<Hash, RangeError> {
        self.levels
            .get(usize::from(level))
            .and_then(|nodes| usize::try_from(index).ok().and_then(|i| nodes.get(i)))
            .copied()
            .ok_or(RangeError::TooLarge {
                tree_size: (index + 1) << level,
                available: self.frontier.size(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "at most u64::MAX leaves")]
    fn frontier_refuses_to_overflow() {
        let mut frontier = Frontier {
            size: u64::MAX,
            nodes: Vec::new(),
        };
        frontier.push(Hash::default(), |_, _, _| {});
    }

    #[test]
    fn frontier_roundtrips_through_source() {
        let leaves = (0..37u64).map(|i| crate::hash::leaf_hash(&i.to_le_bytes()));
        let tree = MemoryTree::from_leaves(leaves);
        for size in 0..=37 {
            let frontier = Frontier::from_source(&tree, size).unwrap();
            assert_eq!(frontier.root(), root_at(&tree, size).unwrap());
        }
        assert!(Frontier::from_source(&tree, 38).is_err());
    }
}
