//! Proof verification: pure functions, no I/O (RFC 9162 sections 2.1.3.2 and 2.1.4.2).
//!
//! Each function either accepts or returns a [`ProofError`] that says what failed. A proof
//! with a changed hash, a wrong leaf index or a wrong tree size fails: the hashes a verifier
//! recomputes depend on all three.
//!
//! Kept from RFC 9162: the verification algorithms as written, plus an exact length check
//! first, so a proof with a hash too many or too few gets a precise error. Added: an old size
//! of 0 is consistent with any tree only against the empty root, and a shrinking tree is its
//! own error ([`ProofError::TreeShrank`]), because to an auditor that is a cut-off tail.

use crate::hash::{empty_root, node_hash, Hash};

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        tree_size: u64,
    },
    /// The proof has more or fewer hashes than a proof for these sizes must have.
    #[error("the proof has {got} hashes; a proof for these sizes has {expected}")]
    WrongLength {
        /// Hashes in the proof.
        got: usize,
        /// Hashes a valid proof has.
        expected: usize,
    },
    /// The proof leads to another root than the expected one.
    #[error("the proof leads to root {computed}, not the expected root {expected}")]
    RootMismatch {
        /// The root the proof leads to.
        computed: Hash,
        /// The root it had to reach.
        expected: Hash,
    },
    /// A consistency proof does not lead back to the old tree's root.
    #[error("the proof leads to old root {computed}, not the checkpointed old root {expected}")]
    OldRootMismatch {
        /// The old root the proof leads to.
        computed: Hash,
        /// The old root it had to reach.
        expected: Hash,
    },
    /// The new tree is smaller than the old one: events were removed.
    #[error("the new tree size {new_size} is smaller than the old tree size {old_size}")]
    TreeShrank {
        /// The old tree size.
        old_size: u64,
        /// The new tree size.
        new_size: u64,
    },
}

/// Number of hashes in an inclusion proof for `index` in a tree of `tree_size`.
fn inclusion_length(index: u64, tree_size: u64) -> usize {
    // Levels below the point where the paths to `index` and to the last leaf part, plus the
    // right-edge siblings above it.
    let inner = 64 - (index ^ (tree_size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The root that an inclusion proof leads to from `leaf` at `index` in a tree of `tree_size`.
pub fn root_from_inclusion_proof(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let expected = inclusion_length(index, tree_size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            expected,
        });
    }
    let (mut fn_, mut sn) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                expected,
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            expected,
        });
    }
    Ok(r)
}

/// Checks that `leaf` is the leaf at `index` of the tree of `tree_size` with `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf, index, tree_size, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// Checks that the tree of `new_size` with `new_root` extends the tree of `old_size` with
/// `old_root`: same first `old_size` leaves, in the same order.
///
/// `old_size == 0` is consistent with any tree when `old_root` is the empty root and the
/// proof is empty; equal sizes need equal roots and an empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::TreeShrank { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                expected: 0,
            });
        }
        let (computed, expected) = if old_size == 0 {
            (empty_root(), *old_root)
        } else {
            (*new_root, *old_root)
        };
        if computed != expected {
            return Err(ProofError::OldRootMismatch { computed, expected });
        }
        return Ok(());
    }
    let (old_computed, new_computed) =
        roots_from_consistency_proof(old_size, new_size, old_root, proof)?;
    if old_computed != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: old_computed,
            expected: *old_root,
        });
    }
    if new_computed != *new_root {
        return Err(ProofError::RootMismatch {
            computed: new_computed,
            expected: *new_root,
        });
    }
    Ok(())
}

/// Number of hashes in a consistency proof for `0 < old_size < new_size`.
fn consistency_length(old_size: u64, new_size: u64) -> usize {
    let inner = 64 - ((old_size - 1) ^ (new_size - 1)).leading_zeros();
    let border = (old_size - 1).checked_shr(inner).unwrap_or(0).count_ones();
    // Levels below the old tree's last complete subtree are shared and need no hashes.
    let shift = old_size.trailing_zeros();
    // A power-of-two old tree is its own seed; otherwise the proof's first hash is.
    let seed = u32::from(!old_size.is_power_of_two());
    (seed + inner.saturating_sub(shift) + border) as usize
}

/// The (old root, new root) a consistency proof leads to, for `0 < old_size < new_size`.
fn roots_from_consistency_proof(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    proof: &[Hash],
) -> Result<(Hash, Hash), ProofError> {
    let expected = consistency_length(old_size, new_size);
    let wrong_length = ProofError::WrongLength {
        got: proof.len(),
        expected,
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    let mut hashes = proof.iter();
    let seed = if old_size.is_power_of_two() {
        *old_root
    } else {
        match hashes.next() {
            Some(hash) => *hash,
            None => return Err(wrong_length),
        }
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in hashes {
        if sn == 0 {
            return Err(wrong_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_length);
    }
    Ok((fr, sr))
}
