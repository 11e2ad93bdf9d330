//! [`Halt`]: why a replica stopped applying (docs/REPLICATION.md, sections "Applying a
//! command" and "State beside the store").

use serde::{Deserialize, Serialize};

use crate::replica::Divergence;

/// Why a replica stopped applying: it refuses every later entry (openraft stops the node)
/// until it is reopened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Halt {
    /// It computed another head than the leader.
    #[error(transparent)]
    Diverged(#[from] Divergence),
    /// Making applied entries durable in the background failed (the store's sync, or the
    /// applied state's record): what the disk holds is unknown until it is reopened, and
    /// the entries are in a majority's Raft logs, so reopening applies them again.
    #[error("saving the applied state failed: {reason}; applying stopped")]
    SaveFailed {
        /// The failure.
        reason: String,
    },
}

impl Halt {
    /// The divergence, when that is why.
    #[must_use]
    pub fn divergence(&self) -> Option<&Divergence> {
        match self {
            Halt::Diverged(divergence) => Some(divergence),
            Halt::SaveFailed { .. } => None,
        }
    }
}
