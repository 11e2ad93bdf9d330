//! Which state the proposer builds its next entry on (docs/REPLICATION.md, section
//! "Acknowledgements and reads"). When every part of its last entry was answered at commit
//! (`crate::certain`), applying that entry can only leave each of its streams at the last
//! `expected` of its parts there (or stop the node), so the next entry need not wait for the
//! leader's apply: it is built on the applied state with those heads over it.
//!
//! | last entry (index n)                    | log after it  | applied  | next entry built on |
//! |-----------------------------------------|---------------|----------|---------------------|
//! | none, or a part waited for the apply    | any           | any      | the applied state, once the whole log is applied |
//! | every part answered at commit           | another entry | any      | the same |
//! | every part answered at commit           | nothing       | n - 1    | the applied state with the entry's heads over it ([`Footing::Projected`]) |
//! | every part answered at commit           | nothing       | below    | the same, once n - 1 is applied |
//! | every part answered at commit           | nothing       | n        | the applied state as it is |
//!
//! Built on the projection, an append to a stream of entry n has `read_at` = n (its head is
//! the one after entry n), and the entry is a [`crate::Command::Projected`] `through` n: a
//! replica answers such an append `StaleHead`, not a divergence, if entry n did not append to
//! its stream after all. A request id of entry n is not in the ledger until it is applied: an
//! append carrying one is not certain (applying it answers from the table), so it waits for
//! the apply's answer. The entry is answered at commit only if it lands at n + 1
//! (`crate::commit_watch`: it registers `follows` = n).

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{Head, RequestId};

/// The heads an entry whose every part was answered at commit leaves, before it is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Projection {
    /// The entry's log index.
    pub(crate) index: u64,
    /// Each stream it appends to, with the head its last part there leaves.
    pub(crate) heads: BTreeMap<u64, Head>,
    /// Its request ids.
    pub(crate) requests: BTreeSet<RequestId>,
}

/// What the proposer does before it reads heads for the next entry (the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Footing {
    /// Waits until the whole log, at least up to this index, is applied; reads it as it is.
    CatchUp(u64),
    /// Waits until this index (n - 1) is applied; then reads the applied state with the last
    /// entry's heads over it if the state read is at n - 1, as it is if it is at n or past.
    Projected(u64),
}

/// The footing of the next entry after `last` (the last entry, if every part of it was
/// answered at commit), with `last_log_index` the index of this node's last log entry.
pub(crate) fn footing(last: Option<&Projection>, last_log_index: u64) -> Footing {
    match last {
        Some(last) if last.index == last_log_index && last.index > 0 => {
            Footing::Projected(last.index - 1)
        }
        Some(last) => Footing::CatchUp(last_log_index.max(last.index)),
        None => Footing::CatchUp(last_log_index),
    }
}

impl Projection {
    /// Whether a state applied up to `applied` takes this projection's heads over it.
    pub(crate) fn over(&self, applied: u64) -> bool {
        applied + 1 == self.index
    }
}

#[cfg(test)]
#[path = "projection_tests.rs"]
mod tests;
