//! What a write on a node answers: [`Appended`], or why not ([`WriteError`]).

use openraft::LogId;

use crate::command::{Head, Rejection};
use crate::types::NodeId;

/// Why a write was not acknowledged. Only [`WriteError::Rejected`] says the write did not
/// happen; after the others it may have (retry with the same request id to find out).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader; `leader` is the one it knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// Every replica refused the command; nothing was written.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Raft failed (stopped, storage failed, the leader could not catch up).
    #[error("raft: {0}")]
    Raft(String),
}

/// An acknowledged append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The offset of the batch's first event.
    pub first_offset: u64,
    /// The stream's head after it.
    pub head: Head,
    /// The log entry that carried it.
    pub log_id: LogId<NodeId>,
}
