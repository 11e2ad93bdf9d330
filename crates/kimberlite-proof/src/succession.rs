//! The monitor's check: is a log's new checkpoint a successor of the last one seen? Either
//! the same tree, or a larger tree proven to extend it; anything else is evidence that the
//! log showed two histories (a split view or a fork) or went back (a rollback).
//!
//! | new vs. last seen            | verdict                                            |
//! |------------------------------|----------------------------------------------------|
//! | nothing seen yet             | [`Succession::First`]: trusted on first use        |
//! | same size, same root         | [`Succession::Unchanged`]                          |
//! | same size, another root      | [`SuccessionError::SplitView`]                     |
//! | smaller size                 | [`SuccessionError::Rollback`]                      |
//! | larger, proof verifies       | [`Succession::Extended`]                           |
//! | larger, proof does not       | [`SuccessionError::Inconsistent`]                  |
//! | larger, no proof obtained    | [`SuccessionError::NoProof`]: not evidence, retry  |

use crate::checkpoint::Checkpoint;
use crate::hash::Hash;
use crate::verify::{verify_consistency, ProofError};

/// A new checkpoint that succeeds the last one seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Succession {
    /// The first checkpoint seen of the log.
    First,
    /// The same tree as before.
    Unchanged,
    /// A larger tree, proven to extend the last one.
    Extended {
        /// The last size seen.
        old_size: u64,
    },
}

/// Why a new checkpoint does not succeed the last one seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuccessionError<E> {
    /// Another log altogether.
    #[error("the checkpoint is of log {new:?}, the last one seen of log {old:?}")]
    OriginChanged {
        /// The last origin seen.
        old: String,
        /// The new one.
        new: String,
    },
    /// The same size with another root: two histories.
    #[error("SPLIT VIEW: the log showed size {size} with root {old_root}, now size {size} with root {new_root}")]
    SplitView {
        /// The tree size.
        size: u64,
        /// The root seen before.
        old_root: Hash,
        /// The root now.
        new_root: Hash,
    },
    /// A smaller tree than one seen before.
    #[error("ROLLBACK: the log showed size {old_size} (root {old_root}), now size {new_size} (root {new_root})")]
    Rollback {
        /// The size seen before.
        old_size: u64,
        /// Its root.
        old_root: Hash,
        /// The smaller size now.
        new_size: u64,
        /// Its root.
        new_root: Hash,
    },
    /// A larger tree that is not proven to extend the one seen before.
    #[error("INCONSISTENT: the checkpoint of size {new_size} (root {new_root}) does not extend the one of size {old_size} (root {old_root}): {reason}")]
    Inconsistent {
        /// The size seen before.
        old_size: u64,
        /// Its root.
        old_root: Hash,
        /// The size now.
        new_size: u64,
        /// Its root.
        new_root: Hash,
        /// Why the consistency proof failed.
        reason: ProofError,
    },
    /// The consistency proof could not be obtained (the log did not answer): no verdict.
    #[error("no consistency proof from size {old_size} to size {new_size}: {source}")]
    NoProof {
        /// The size seen before.
        old_size: u64,
        /// The size now.
        new_size: u64,
        /// Why not.
        source: E,
    },
}

impl<E> SuccessionError<E> {
    /// True when the error is evidence against the log (not a failure to ask it).
    #[must_use]
    pub fn is_evidence(&self) -> bool {
        !matches!(self, Self::NoProof { .. } | Self::OriginChanged { .. })
    }
}

/// Checks that `new` succeeds `last` (module docs); `prove(old, new)` gives the consistency
/// proof between the sizes, only called when `new` is larger.
pub fn check_succession<E>(
    last: Option<&Checkpoint>,
    new: &Checkpoint,
    prove: impl FnOnce(u64, u64) -> Result<Vec<Hash>, E>,
) -> Result<Succession, SuccessionError<E>> {
    let Some(last) = last else {
        return Ok(Succession::First);
    };
    if last.origin != new.origin {
        return Err(SuccessionError::OriginChanged {
            old: last.origin.clone(),
            new: new.origin.clone(),
        });
    }
    let (old_size, old_root, new_size, new_root) =
        (last.tree_size, last.root, new.tree_size, new.root);
    if new_size < old_size {
        return Err(SuccessionError::Rollback {
            old_size,
            old_root,
            new_size,
            new_root,
        });
    }
    if new_size == old_size {
        if new_root != old_root {
            return Err(SuccessionError::SplitView {
                size: new_size,
                old_root,
                new_root,
            });
        }
        return Ok(Succession::Unchanged);
    }
    let proof = match old_size {
        // The empty tree is extended by every tree; its root is fixed.
        0 => Vec::new(),
        _ => prove(old_size, new_size).map_err(|source| SuccessionError::NoProof {
            old_size,
            new_size,
            source,
        })?,
    };
    verify_consistency(old_size, new_size, &old_root, &new_root, &proof).map_err(|reason| {
        SuccessionError::Inconsistent {
            old_size,
            old_root,
            new_size,
            new_root,
            reason,
        }
    })?;
    Ok(Succession::Extended { old_size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::{consistency_proof, MemoryTree, NodeSource as _};

    fn tree(leaves: &[&str]) -> MemoryTree {
        MemoryTree::from_leaves(leaves.iter().map(|leaf| leaf_hash(leaf.as_bytes())))
    }

    fn checkpoint(tree: &MemoryTree) -> Checkpoint {
        Checkpoint {
            origin: "ehr/audit".into(),
            tree_size: tree.leaf_count(),
            root: tree.root(),
            extensions: vec![],
        }
    }

    fn check(old: &MemoryTree, new: &MemoryTree) -> Result<Succession, SuccessionError<String>> {
        check_succession(Some(&checkpoint(old)), &checkpoint(new), |a, b| {
            consistency_proof(new, a, b).map_err(|e| e.to_string())
        })
    }

    #[test]
    fn each_row_of_the_table() {
        let three = tree(&["a", "b", "c"]);
        let five = tree(&["a", "b", "c", "d", "e"]);
        let fork = tree(&["a", "b", "x", "d", "e"]);
        let first = check_succession::<()>(None, &checkpoint(&three), |_, _| Err(()));
        assert_eq!(first.unwrap(), Succession::First);
        assert_eq!(check(&three, &three).unwrap(), Succession::Unchanged);
        assert_eq!(
            check(&three, &five).unwrap(),
            Succession::Extended { old_size: 3 }
        );
        let split = check(&five, &fork).unwrap_err();
        assert!(matches!(split, SuccessionError::SplitView { size: 5, .. }));
        assert!(split.to_string().contains(&five.root().to_string()));
        assert!(split.to_string().contains(&fork.root().to_string()));
        let rollback = check(&five, &three).unwrap_err();
        assert!(rollback.is_evidence());
        assert!(
            rollback
                .to_string()
                .starts_with("ROLLBACK: the log showed size 5"),
            "{rollback}"
        );
        // The fork grew past what was seen: its proof cannot reach the old root.
        let grown = tree(&["a", "b", "x", "d", "e", "f"]);
        let inconsistent = check(&five, &grown).unwrap_err();
        assert!(matches!(
            inconsistent,
            SuccessionError::Inconsistent {
                old_size: 5,
                new_size: 6,
                ..
            }
        ));
        assert_eq!(grown.leaf_count(), 6);
        // No proof: not evidence.
        let down = check_succession(Some(&checkpoint(&three)), &checkpoint(&five), |_, _| {
            Err("unreachable")
        })
        .unwrap_err();
        assert!(!down.is_evidence());
        let mut other = checkpoint(&five);
        other.origin = "ehr/other".into();
        assert!(matches!(
            check_succession::<()>(Some(&checkpoint(&three)), &other, |_, _| Err(())),
            Err(SuccessionError::OriginChanged { .. })
        ));
    }
}
