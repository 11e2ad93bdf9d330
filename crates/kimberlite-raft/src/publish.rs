//! The leader's side of a checkpoint: [`Node::publish_checkpoint`] signs the tree it has
//! applied (so, committed state) and has every replica keep it through the Raft log
//! (docs/REPLICATION.md, section "Checkpoints").

use kimberlite::proof::{sign_checkpoint, Checkpoint, SignerKey};
use kimberlite::StreamId;
use openraft::LogId;

use crate::command::{Command, Rejection, Response};
use crate::node::Node;
use crate::proposer::{catch_up, check_leading, propose};
use crate::types::NodeId;
use crate::write::WriteError;

/// A checkpoint every replica keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCheckpoint {
    /// Events it covers.
    pub tree_size: u64,
    /// The root of the stream's tree over them.
    pub root: [u8; 32],
    /// The signed note (C2SP checkpoint).
    pub note: String,
    /// The log entry that carried it; when a kept checkpoint already covered the leader's
    /// applied tree, the log position that was applied then.
    pub log_id: Option<LogId<NodeId>>,
}

/// Why no checkpoint was published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// As for any write: not the leader, refused, or an unknown outcome (ask again).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// This node's store could not give the tree to sign or its kept checkpoints (nothing
    /// was proposed).
    #[error(transparent)]
    Store(#[from] kimberlite::Error),
}

impl From<Rejection> for PublishError {
    fn from(rejection: Rejection) -> Self {
        PublishError::Write(rejection.into())
    }
}

impl Node {
    /// Signs the tree head of `stream` this node has applied, once it has applied its whole
    /// log, as the checkpoint of `origin` with `key` (on the leader), and returns once the
    /// entry carrying it is committed and applied here: every replica that applies it checks
    /// its own tree against it and keeps the note in its store. When the largest checkpoint
    /// kept already is that note (the stream has not grown since), it is answered without a
    /// log entry.
    pub async fn publish_checkpoint(
        &self,
        stream: u64,
        origin: &str,
        key: &SignerKey,
    ) -> Result<PublishedCheckpoint, PublishError> {
        check_leading(self.raft(), self.id())?;
        // An append is answered once committed, maybe before it is applied here: the
        // checkpoint covers every append answered before it was asked for.
        catch_up(self.raft()).await?;
        let id = StreamId::new(stream);
        let state_machine = self.state_machine().clone();
        // The tree head may sync the store's last writes first: blocking file work.
        let ((head, latest), applied) = tokio::task::spawn_blocking(move || {
            state_machine.read(|store| (store.tree_head(id), store.latest_signed_checkpoint(id)))
        })
        .await
        .map_err(|error| WriteError::Raft(format!("reading the tree head failed: {error}")))?;
        let head = match head {
            Ok(head) => head,
            Err(kimberlite::Error::UnknownStream { .. }) => {
                return Err(Rejection::UnknownStream { stream }.into())
            }
            Err(error) => return Err(error.into()),
        };
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            tree_size: head.tree_size,
            root: head.root,
            extensions: Vec::new(),
        };
        let note = sign_checkpoint(key, &checkpoint).map_err(|error| Rejection::Invalid {
            reason: error.to_string(),
        })?;
        // Signatures are deterministic: the same key over the same tree gives the same note.
        if latest?.is_some_and(|kept| kept.note == note) {
            return Ok(PublishedCheckpoint {
                tree_size: head.tree_size,
                root: head.root.0,
                note,
                log_id: applied,
            });
        }
        let command = Command::PublishCheckpoint {
            stream,
            tree_size: head.tree_size,
            root: head.root.0,
            note: note.clone(),
        };
        match propose(self.raft(), self.id(), command, self.proposal_timeout()).await? {
            (Response::CheckpointKept { .. }, log_id) => Ok(PublishedCheckpoint {
                tree_size: head.tree_size,
                root: head.root.0,
                note,
                log_id: Some(log_id),
            }),
            (Response::Rejected(rejection), _) => Err(rejection.into()),
            (other, _) => Err(WriteError::Raft(format!("unexpected answer {other:?}")).into()),
        }
    }
}
