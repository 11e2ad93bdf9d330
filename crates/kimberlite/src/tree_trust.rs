//! A stream's stored tree checked against its log before anything is signed, proven or
//! reported from it (SPEC.md section 7; docs/PROOFS.md, "Making the evidence").
//!
//! Open reads each stream's frontier (the at most 64 nodes its root is made of) from the side
//! files, and checks it only against the nodes below it: a forgery that replaces a leaf or
//! a node and recomputes every parent is self-consistent and passes. So the first tree head
//! or proof of a stream after open recomputes that frontier from a verified read of the log
//! (every event read, chain-checked and leaf-hashed: O(n), once per stream per open) and
//! compares the two ([`crate::merkle::StreamTree::settle`]):
//!
//! - equal: the frontier is the log's, and every node pushed after open is hashed by this
//!   process from the log's own events, so the root stays the log's; each proof is checked
//!   against it before it is handed out (module `proofs`);
//! - different: the tree is damaged, the first differing node is named, and every tree head
//!   and proof of the stream is refused with [`crate::Error::TreeDamaged`].
//!
//! Why not at open: open would read the whole store, for every command; a store that only
//! appends or reads never pays for it. Why not at every call: a long-running store pays
//! once per stream.

use kimberlite_proof::{event_leaf_hash, Frontier};
use kimberlite_types::StreamId;

use crate::error::{Error, Result};
use crate::merkle::{level_name, StreamTree, TreeError};
use crate::store::Kimberlite;

impl Kimberlite {
    /// Compares the frontier open read from stream `id`'s side files with the frontier of
    /// the log's first events of that size, once: O(1) when it is done, a verified read and
    /// hash of those events otherwise. Errors when the log cannot be read (its damage is the
    /// error) or the trees cannot be locked.
    pub(crate) fn trust_tree(&self, id: StreamId) -> Result<()> {
        self.settle_unsynced_trees()?;
        let (name, opened) = {
            let state = self.read_state();
            let name = state.name_of(id)?.to_owned();
            let trees = state
                .merkle
                .trees_now()
                .map_err(|error| unavailable(&name, &error))?;
            match trees.get(id).and_then(StreamTree::unchecked) {
                Some(opened) => (name, opened.clone()),
                None => return Ok(()),
            }
        };
        let log = self.log_frontier(id, opened.size())?;
        let disagreement = (opened != log).then(|| frontier_disagreement(&opened, &log));
        let state = self.read_state();
        let mut trees = state
            .merkle
            .trees_now()
            .map_err(|error| unavailable(&name, &error))?;
        trees.settle(id, disagreement);
        Ok(())
    }

    /// The frontier of stream `id`'s first `size` events, from a verified read of the log
    /// (fewer when the log holds fewer: the comparison then fails on the size).
    fn log_frontier(&self, id: StreamId, size: u64) -> Result<Frontier> {
        // From the frontier kept at a retention cut, if any: the events below it are gone.
        let (first, mut frontier) = crate::retention::tree_start(&self.read_state(), id);
        if frontier.size() >= size {
            return Ok(frontier);
        }
        for event in self.events(id, first) {
            let event = event?;
            let offset = event.offset.as_u64();
            if offset >= size {
                break;
            }
            frontier.push(event_leaf_hash(offset, &event.payload), |_, _, _| {});
            if frontier.size() == size {
                break;
            }
        }
        Ok(frontier)
    }
}

/// Where the frontier `opened` (read from the side files) first differs from `log` (hashed
/// from the log's events): the node's level, index, file and byte, and the offsets it covers.
fn frontier_disagreement(opened: &Frontier, log: &Frontier) -> String {
    if opened.size() != log.size() {
        return format!(
            "the side files hold a tree of {} events where the log holds {}",
            opened.size(),
            log.size()
        );
    }
    let size = opened.size();
    let mut start = 0u64;
    let levels = (0..=kimberlite_proof::tree::MAX_LEVEL)
        .rev()
        .filter(|level| size & (1u64 << level) != 0);
    for ((level, stored), logged) in levels.zip(opened.nodes()).zip(log.nodes()) {
        let index = start >> level;
        let last = start + (1u64 << level) - 1;
        if stored != logged {
            let what = if level == 0 {
                format!("leaf {index}")
            } else {
                format!("node {index} of level {level}")
            };
            return format!(
                "{what} ({}, byte {}) is not the hash of the log's events at offsets                  {start}..={last}: the side files were changed so that they hash to another                  root",
                level_name(level),
                index * 32
            );
        }
        start = last + 1;
    }
    "the frontier read from the side files differs from the log's".to_owned()
}

fn unavailable(name: &str, error: &TreeError) -> Error {
    Error::TreeUnavailable {
        name: name.to_owned(),
        reason: error.to_string(),
    }
}

impl Kimberlite {
    /// Under [`Durability::Unsynced`](crate::Durability::Unsynced), batches reach the trees
    /// only once synced (`TreeBacklog`): a tree head, proof or tree check asked for while some
    /// wait syncs first, so it covers every event written and only durable ones.
    pub(crate) fn settle_unsynced_trees(&self) -> Result<()> {
        // After a failed sync nothing more is made durable (fail-stop): the trees stay at
        // what was durable.
        let waiting = self.inner.config.durability == crate::Durability::Unsynced
            && !self.inner.commit.failed()
            && !self.read_state().tree_backlog.is_empty();
        if waiting {
            self.sync()?;
        }
        Ok(())
    }
}
