//! The applied state beside the store (`state-machine.log`): the last applied log id, the
//! membership and the [`Ledger`], kept incrementally (docs/REPLICATION.md, section "State
//! beside the store").
//!
//! A [`JournalFile`] (format and recovery there) whose records are what each applied batch
//! changed ([`AppliedRecord::Batch`]: the answers kept, the streams changed, the new last
//! applied log id), so a batch writes its own changes only, not the whole request table.
//! When the file has grown to several times what its last rewrite wrote, it is rewritten as
//! one [`AppliedRecord::Full`] (written beside, synced, renamed over it): the cost of a
//! rewrite is spread over the batches that grew the file, and replay stays bounded.
//!
//! Crash safety: a torn last record is cut (that batch is applied again: the store may be
//! ahead of this file, and [`crate::Replica::apply`] answers an entry applied again as the
//! first time); a damaged record before intact ones fails the open.

use openraft::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::journal_file::{Journal, JournalFile};
use crate::node_fs::NodeFs;
use crate::replica::{Ledger, LedgerChange};
use crate::types::{Node, NodeId};

/// The applied state's file in a node's directory.
pub const APPLIED_FILE: &str = "state-machine.log";
/// The file is rewritten once it is this many times what its last rewrite wrote ...
const REWRITE_GROWTH_FACTOR: u64 = 4;
/// ... counting at least this many bytes for the last rewrite (a small state is not
/// rewritten after every few batches).
const REWRITE_BASE_BYTES_MIN: u64 = 256 * 1024;

/// The applied state file over a node's file system.
pub(crate) type AppliedFile = JournalFile<NodeFs, AppliedState>;

/// What is kept beside the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppliedState {
    /// The last applied log id.
    pub(crate) last_applied: Option<LogId<NodeId>>,
    /// The last applied membership.
    pub(crate) membership: StoredMembership<NodeId, Node>,
    /// The ledger.
    pub(crate) ledger: Ledger,
}

/// One record of the applied state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum AppliedRecord {
    /// The whole state: the first record of a rewritten file, or an installed snapshot's.
    Full(AppliedState),
    /// What one applied batch changed.
    Batch {
        /// The last log id the batch applied.
        last_applied: Option<LogId<NodeId>>,
        /// The membership, when the batch changed it.
        membership: Option<StoredMembership<NodeId, Node>>,
        /// The ledger's changes, in the order they were made.
        changes: Vec<LedgerChange>,
    },
}

impl Journal for AppliedState {
    type Record = AppliedRecord;
    const FILE: &'static str = APPLIED_FILE;

    fn apply(&mut self, record: AppliedRecord) {
        match record {
            AppliedRecord::Full(state) => *self = state,
            AppliedRecord::Batch {
                last_applied,
                membership,
                changes,
            } => {
                self.last_applied = last_applied;
                if let Some(membership) = membership {
                    self.membership = membership;
                }
                for change in changes {
                    self.ledger.apply(change);
                }
            }
        }
    }

    fn records(&self) -> Vec<AppliedRecord> {
        vec![AppliedRecord::Full(self.clone())]
    }

    fn wants_rewrite(&self, _record_count: u64, len_bytes: u64, base_len_bytes: u64) -> bool {
        len_bytes > REWRITE_GROWTH_FACTOR * base_len_bytes.max(REWRITE_BASE_BYTES_MIN)
    }
}
