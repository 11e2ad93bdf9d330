//! Proposing one entry through openraft on the leader: the leadership checks, the wait to
//! have applied the log, and the bounded wait for the entry's answer (`crate::proposer`,
//! `crate::publish`).

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::LogId;

use crate::command::{Command, Response};
use crate::types::{NodeId, Raft};
use crate::write::WriteError;

/// How long the leader waits to have applied its log before it reads heads.
const CATCH_UP_TIMEOUT_MS: u64 = 5_000;

/// Refuses at once on a node that knows it does not lead, instead of waiting to catch up.
pub(crate) fn check_leading(raft: &Raft, id: NodeId) -> Result<(), WriteError> {
    leading_term(raft, id).map(|_| ())
}

/// The term node `id` leads in, as far as it knows, or [`WriteError::NotLeader`].
pub(crate) fn leading_term(raft: &Raft, id: NodeId) -> Result<u64, WriteError> {
    let metrics = raft.metrics();
    let now = metrics.borrow();
    if now.current_leader == Some(id) {
        return Ok(now.current_term);
    }
    Err(WriteError::NotLeader {
        leader: now.current_leader,
    })
}

/// Waits until this node has applied every entry in its log, so the heads it reads are
/// those the next entry will meet.
pub(crate) async fn catch_up(raft: &Raft) -> Result<(), WriteError> {
    let last_log_index = raft.metrics().borrow().last_log_index.unwrap_or(0);
    applied_at_least(raft, last_log_index).await
}

/// Waits until this node has applied its log up to `index`.
pub(crate) async fn applied_at_least(raft: &Raft, index: u64) -> Result<(), WriteError> {
    raft.wait(Some(Duration::from_millis(CATCH_UP_TIMEOUT_MS)))
        .applied_index_at_least(Some(index), "leader catches up")
        .await
        .map(|_| ())
        .map_err(|error| WriteError::Raft(error.to_string()))
}

/// Proposes `command` on leader `id` and waits until this node has applied it, for at most
/// `bound` and only while `id` leads in the term it proposed in; after either, the outcome is
/// unknown (the entry may still commit: a retry with the same request id finds out). openraft
/// never answers some proposals of a deposed leader: one whose entry a snapshot from the
/// next leader then covers is neither applied nor truncated on this node (docs/REPLICATION.md,
/// section "Many writes in flight"), and a leader cut off from the majority waits forever.
pub(crate) async fn propose(
    raft: &Raft,
    id: NodeId,
    command: Command,
    bound: Duration,
) -> Result<(Response, LogId<NodeId>), WriteError> {
    let term = raft.metrics().borrow().current_term;
    let unknown = tokio::select! {
        // An answer that is there wins over a step down seen at the same time.
        biased;
        written = raft.client_write(command) => return match written {
            Ok(written) => Ok((written.data, written.log_id)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(WriteError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(error) => Err(WriteError::Raft(error.to_string())),
        },
        () = deposed(raft, id, term) => {
            format!("node {id} stopped leading term {term} while the entry was in flight")
        }
        () = tokio::time::sleep(bound) => format!(
            "the entry of node {id}, leader of term {term}, was not committed within {} ms",
            bound.as_millis()
        ),
    };
    tracing::warn!("{unknown}: answered as outcome unknown");
    Err(WriteError::Raft(format!(
        "{unknown}: its outcome is unknown"
    )))
}

/// Completes once node `id` no longer leads in `term` (or its Raft stopped).
async fn deposed(raft: &Raft, id: NodeId, term: u64) {
    let mut metrics = raft.metrics();
    loop {
        {
            let now = metrics.borrow_and_update();
            if now.current_term != term || now.current_leader != Some(id) {
                return;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
