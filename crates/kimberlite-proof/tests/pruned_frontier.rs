//! Retention keeps, below a cut, only the Merkle frontier at the cut size (the perfect subtree
//! roots decomposing `[0, cut)`). These tests check, over every cut and size up to a bound,
//! that this crate's proof generation never asks for another node below the cut: every
//! inclusion proof of a kept leaf and every consistency proof between sizes at or above the
//! cut is made from the frontier and the nodes over kept leaves (a node across the cut folded
//! from those), and verifies.

use kimberlite_proof::{
    consistency_proof, inclusion_proof, leaf_hash, node_hash, root_at, verify_consistency,
    verify_inclusion, Frontier, Hash, MemoryTree, NodeSource, RangeError,
};

/// A tree of which only the frontier at `cut` and the nodes over leaves `cut..` are kept.
struct Pruned<'a> {
    tree: &'a MemoryTree,
    size: u64,
    cut: u64,
    frontier: Vec<(u8, u64)>,
}

#[derive(Debug)]
#[allow(dead_code, reason = "read through Debug in the failure messages")]
enum Missing {
    Range(RangeError),
    Pruned { level: u8, index: u64 },
}

impl From<RangeError> for Missing {
    fn from(error: RangeError) -> Self {
        Missing::Range(error)
    }
}

impl<'a> Pruned<'a> {
    fn new(tree: &'a MemoryTree, size: u64, cut: u64) -> Self {
        let mut frontier = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if cut & (1u64 << level) != 0 {
                frontier.push((level, start >> level));
                start += 1u64 << level;
            }
        }
        Self {
            tree,
            size,
            cut,
            frontier,
        }
    }
}

impl NodeSource for Pruned<'_> {
    type Error = Missing;

    fn leaf_count(&self) -> u64 {
        self.size
    }

    /// Nodes over kept leaves are read; a node wholly below the cut must be one of the
    /// frontier's; a node across the cut is folded from its two children (so from frontier
    /// nodes and kept nodes only).
    fn node(&self, level: u8, index: u64) -> Result<Hash, Missing> {
        let start = index << level;
        let end = (index + 1) << level;
        if start >= self.cut || self.frontier.contains(&(level, index)) {
            return Ok(self.tree.node(level, index)?);
        }
        if end <= self.cut || level == 0 {
            return Err(Missing::Pruned { level, index });
        }
        let left = self.node(level - 1, 2 * index)?;
        let right = self.node(level - 1, 2 * index + 1)?;
        Ok(node_hash(&left, &right))
    }
}

fn leaf(i: u64) -> Hash {
    leaf_hash(&i.to_le_bytes())
}

#[test]
fn a_frontier_at_the_cut_is_all_later_proofs_need() {
    const MAX: u64 = 70;
    let full = MemoryTree::from_leaves((0..MAX).map(leaf));
    let roots: Vec<Hash> = (0..=MAX).map(|n| root_at(&full, n).unwrap()).collect();
    for cut in 1..=MAX {
        for size in cut..=MAX {
            let source = Pruned::new(&full, size, cut);
            let root = roots[size as usize];
            for index in cut..size {
                let proof = inclusion_proof(&source, index, size)
                    .unwrap_or_else(|e| panic!("cut {cut}, leaf {index} of {size}: {e:?}"));
                verify_inclusion(&leaf(index), index, size, &proof, &root).unwrap();
            }
            for old in cut..size {
                let proof = consistency_proof(&source, old, size)
                    .unwrap_or_else(|e| panic!("cut {cut}, {old} to {size}: {e:?}"));
                verify_consistency(old, size, &roots[old as usize], &root, &proof).unwrap();
            }
        }
    }
}

#[test]
fn the_frontier_at_the_cut_and_the_kept_leaves_give_every_later_root() {
    const MAX: u64 = 70;
    let full = MemoryTree::from_leaves((0..MAX).map(leaf));
    for cut in 0..=MAX {
        let nodes = Frontier::from_source(&full, cut).unwrap().nodes().to_vec();
        let mut frontier = Frontier::from_parts(cut, nodes).unwrap();
        for next in cut..MAX {
            frontier.push(leaf(next), |_, _, _| {});
            assert_eq!(frontier.root(), root_at(&full, next + 1).unwrap());
        }
    }
    assert!(Frontier::from_parts(3, vec![leaf(0)]).is_none());
    assert!(Frontier::from_parts(4, vec![leaf(0), leaf(1)]).is_none());
}
