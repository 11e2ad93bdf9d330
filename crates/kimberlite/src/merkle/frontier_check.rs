//! The check of the frontier `open` reads from a stream's side files (module `merkle`, "What
//! is trusted"): the one place where side-file bytes enter a root.

use kimberlite_proof::{Hash, NodeSource};

use super::{level_name, StreamTree};

impl StreamTree {
    /// Checks the frontier `open` read from the side files, the only nodes of the stored tree
    /// a root is made of: each interior one must be the hash of the two nodes below it, and
    /// a leaf one (odd sizes) the leaf of the log's event, which `log_leaf` gives (`None`
    /// when the event cannot be read). Notes the first that is not in `damaged`.
    ///
    /// Why here and not per proof: after `open` the frontier only grows by hashing the log's
    /// own events, so this is the one place where side-file bytes enter it. Cost: at most 63
    /// nodes, each with two reads and a hash, and one event read.
    pub(super) fn check_frontier(&mut self, log_leaf: impl FnOnce(u64) -> Option<Hash>) {
        let size = self.size();
        let mut start = 0u64;
        for level in (1..=kimberlite_proof::tree::MAX_LEVEL).rev() {
            if size & (1u64 << level) != 0 {
                self.damaged = self.children_disagreement(level, start >> level);
                if self.damaged.is_some() {
                    return;
                }
                start += 1u64 << level;
            }
        }
        if size & 1 == 1 {
            self.damaged = self.leaf_disagreement(start, log_leaf);
        }
    }

    /// Why frontier node `(level, index)` is not the hash of the two nodes below it, if so.
    fn children_disagreement(&self, level: u8, index: u64) -> Option<String> {
        let below = level - 1;
        let nodes = (
            self.node(level, index),
            self.node(below, 2 * index),
            self.node(below, 2 * index + 1),
        );
        let (node, left, right) = match nodes {
            (Ok(node), Ok(left), Ok(right)) => (node, left, right),
            (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
                return Some(format!(
                    "node {index} of level {level} cannot be checked: {error}"
                ));
            }
        };
        (kimberlite_proof::node_hash(&left, &right) != node).then(|| {
            format!(
                "node {index} of level {level} ({}) is not the hash of nodes {} and {} of \
                 level {below}",
                level_name(level),
                2 * index,
                2 * index + 1
            )
        })
    }

    /// Why the tree's last leaf `index` is not the leaf of the log's event, if so.
    fn leaf_disagreement(
        &self,
        index: u64,
        log_leaf: impl FnOnce(u64) -> Option<Hash>,
    ) -> Option<String> {
        match (self.node(0, index), log_leaf(index)) {
            (Ok(stored), Some(logged)) if stored == logged => None,
            (Ok(_), Some(_)) => Some(format!(
                "leaf {index} ({}) is not the hash of the log's event {index}",
                level_name(0)
            )),
            (Err(error), _) => Some(format!("leaf {index} cannot be checked: {error}")),
            (Ok(_), None) => Some(format!(
                "leaf {index} cannot be checked: the log's event {index} cannot be read"
            )),
        }
    }
}
