//! RFC 6962 / Certificate Transparency reference vectors (the 8-leaf test tree of
//! transparency-dev/merkle `testonly`) and exhaustive property tests for sizes up to 300.

use crate::hash::{leaf_hash, Hash};
use crate::tree::{consistency_proof, inclusion_proof, root_at, MemoryTree};
use crate::verify::{verify_consistency, verify_inclusion, ProofError};

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// `ROOTS[n - 1]` is the root of the first `n` leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, path).
const INCLUSION: [(u64, u64, &[&str]); 7] = [
    (0, 1, &[]),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 4] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

fn h(text: &str) -> Hash {
    Hash::from_hex(text).unwrap()
}

fn reference_tree() -> MemoryTree {
    MemoryTree::from_leaves(
        LEAVES
            .iter()
            .map(|leaf| leaf_hash(&hex::decode(leaf).unwrap())),
    )
}

#[test]
fn reference_roots() {
    let tree = reference_tree();
    for (n, root) in ROOTS.iter().enumerate() {
        assert_eq!(
            root_at(&tree, n as u64 + 1).unwrap(),
            h(root),
            "size {}",
            n + 1
        );
    }
    assert_eq!(tree.root(), h(ROOTS[7]));
    assert_eq!(root_at(&tree, 0).unwrap(), crate::hash::empty_root());
}

#[test]
fn reference_inclusion_proofs() {
    let tree = reference_tree();
    for (index, size, path) in INCLUSION {
        let expected: Vec<Hash> = path.iter().map(|p| h(p)).collect();
        let proof = inclusion_proof(&tree, index, size).unwrap();
        assert_eq!(proof, expected, "PATH({index}, D[{size}])");
        let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).unwrap());
        let root = h(ROOTS[size as usize - 1]);
        verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
    }
}

#[test]
fn reference_consistency_proofs() {
    let tree = reference_tree();
    for (old, new, path) in CONSISTENCY {
        let expected: Vec<Hash> = path.iter().map(|p| h(p)).collect();
        let proof = consistency_proof(&tree, old, new).unwrap();
        assert_eq!(proof, expected, "PROOF({old}, D[{new}])");
        let (old_root, new_root) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
    }
}

const MAX_SIZE: u64 = 300;

fn big_tree() -> MemoryTree {
    MemoryTree::from_leaves((0..MAX_SIZE).map(|i| leaf_hash(&i.to_le_bytes())))
}

fn flip(hash: &Hash) -> Hash {
    let mut bytes = hash.0;
    bytes[7] ^= 0x10;
    Hash(bytes)
}

/// Every leaf of every tree size up to 300: the proof verifies; a changed hash, index, size
/// or root, or a hash too many or too few, is rejected.
#[test]
fn every_inclusion_proof_verifies_and_every_change_is_rejected() {
    let tree = big_tree();
    let roots: Vec<Hash> = (0..=MAX_SIZE).map(|n| root_at(&tree, n).unwrap()).collect();
    for size in 1..=MAX_SIZE {
        let root = roots[size as usize];
        for index in 0..size {
            let leaf = leaf_hash(&index.to_le_bytes());
            let proof = inclusion_proof(&tree, index, size).unwrap();
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i]);
                assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
            }
            assert!(verify_inclusion(&flip(&leaf), index, size, &proof, &root).is_err());
            assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root)).is_err());
            for other in [index.wrapping_sub(1), index + 1, index ^ 1] {
                assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err());
            }
            // A tree size comes with its own root (both are signed in a checkpoint).
            for other in [size - 1, size + 1, size * 2] {
                let Some(other_root) = roots.get(other as usize) else {
                    continue;
                };
                assert!(verify_inclusion(&leaf, index, other, &proof, other_root).is_err());
            }
            let mut longer = proof.clone();
            longer.push(root);
            assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
            if let Some((_, shorter)) = proof.split_last() {
                assert!(verify_inclusion(&leaf, index, size, shorter, &root).is_err());
            }
        }
    }
}

/// Every pair `m <= n <= 300`: the proof verifies; a changed hash, size or root is rejected.
#[test]
fn every_consistency_proof_verifies_and_every_change_is_rejected() {
    let tree = big_tree();
    let roots: Vec<Hash> = (0..=MAX_SIZE).map(|n| root_at(&tree, n).unwrap()).collect();
    for new in 1..=MAX_SIZE {
        for old in 1..=new {
            let (old_root, new_root) = (roots[old as usize], roots[new as usize]);
            let proof = consistency_proof(&tree, old, new).unwrap();
            verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i]);
                assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err());
            }
            assert!(verify_consistency(old, new, &flip(&old_root), &new_root, &proof).is_err());
            assert!(verify_consistency(old, new, &old_root, &flip(&new_root), &proof).is_err());
            for (o, n) in [
                (old - 1, new),
                (old + 1, new),
                (old, new + 1),
                (old, new - 1),
            ] {
                // Each tree size comes with its own root (both are signed in a checkpoint).
                if o == 0 || o > n || n > MAX_SIZE {
                    continue;
                }
                let result =
                    verify_consistency(o, n, &roots[o as usize], &roots[n as usize], &proof);
                assert!(result.is_err(), "{old}->{new} as {o}->{n}");
            }
            let mut longer = proof.clone();
            longer.push(new_root);
            assert!(verify_consistency(old, new, &old_root, &new_root, &longer).is_err());
        }
    }
}

#[test]
fn empty_and_shrinking_trees() {
    let tree = big_tree();
    let root = root_at(&tree, 5).unwrap();
    let empty = crate::hash::empty_root();
    verify_consistency(0, 5, &empty, &root, &[]).unwrap();
    assert!(verify_consistency(0, 5, &root, &root, &[]).is_err());
    assert_eq!(
        verify_consistency(6, 5, &root, &root, &[]),
        Err(ProofError::TreeShrank {
            old_size: 6,
            new_size: 5
        })
    );
    assert!(inclusion_proof(&tree, 5, 5).is_err());
    assert!(inclusion_proof(&tree, 0, MAX_SIZE + 1).is_err());
    assert!(consistency_proof(&tree, 0, 5).is_err());
    assert!(consistency_proof(&tree, 6, 5).is_err());
    assert!(verify_inclusion(&root, u64::MAX, u64::MAX, &[], &root).is_err());
    assert!(verify_inclusion(&root, 0, u64::MAX, &[root; 70], &root).is_err());
    assert!(verify_consistency(u64::MAX - 1, u64::MAX, &root, &root, &[root; 3]).is_err());
}
