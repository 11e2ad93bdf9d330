//! Applying a [`Command::PublishCheckpoint`]: every replica checks the leader's checkpoint
//! against its own tree and keeps the note in its store, as `kimberlite checkpoint` keeps one
//! (docs/REPLICATION.md, section "Checkpoints").
//!
//! The leader signed the tree it had applied when it proposed; the entry is applied later, at
//! its own index, where every replica's stream holds at least as many events (the log is
//! applied in order), so the check is of the tree's root *at the checkpoint's size*. A
//! replica with fewer events or another root there holds another history: it stops, as for
//! an append ([`Divergence`]).

use kimberlite::proof::{split_note, Checkpoint};
use kimberlite::{Error, StreamId};

use crate::command::{Head, Rejection, Response};
use crate::replica::{ApplyError, Divergence, DivergencePoint, Replica};

impl Replica {
    /// Applies the checkpoint of `stream` of log entry `index`: `tree_size` events whose
    /// root is `root`, signed in `note`.
    pub(crate) fn keep_checkpoint(
        &self,
        index: u64,
        stream: u64,
        (tree_size, root): (u64, [u8; 32]),
        note: &str,
    ) -> Result<Response, ApplyError> {
        let id = StreamId::new(stream);
        let store_error = |source| ApplyError::Store { index, source };
        match self.store().head(id) {
            Ok(_) => {}
            Err(Error::UnknownStream { .. }) => {
                return Ok(Response::Rejected(Rejection::UnknownStream { stream }))
            }
            Err(source) => return Err(store_error(source)),
        }
        // The same on every replica: a note that does not say what the entry says.
        if let Err(reason) = states(note, tree_size, root) {
            return Ok(Response::Rejected(Rejection::Invalid { reason }));
        }
        let expected = Head {
            next_offset: tree_size,
            hash: Some(root),
        };
        let diverged = |computed| Divergence {
            index,
            stream,
            point: DivergencePoint::Checkpoint,
            expected,
            computed,
        };
        let head = self.store().tree_head(id).map_err(store_error)?;
        if head.tree_size < tree_size {
            return Err(diverged(Head {
                next_offset: head.tree_size,
                hash: Some(head.root.0),
            })
            .into());
        }
        let mine = self
            .store()
            .tree_root_at(id, tree_size)
            .map_err(store_error)?;
        if mine.0 != root {
            return Err(diverged(Head {
                next_offset: tree_size,
                hash: Some(mine.0),
            })
            .into());
        }
        self.store()
            .keep_signed_checkpoint(id, note)
            .map_err(store_error)?;
        Ok(Response::CheckpointKept { tree_size })
    }
}

/// Whether `note` is a signed checkpoint of `tree_size` events with root `root`.
pub(crate) fn states(note: &str, tree_size: u64, root: [u8; 32]) -> Result<(), String> {
    let (text, _) = split_note(note).map_err(|error| error.to_string())?;
    let checkpoint = Checkpoint::parse(text).map_err(|error| error.to_string())?;
    if checkpoint.tree_size != tree_size || checkpoint.root.0 != root {
        return Err(format!(
            "the note is of size {} and root {}, the entry says size {tree_size} and root {}",
            checkpoint.tree_size,
            checkpoint.root,
            hex::encode(root)
        ));
    }
    Ok(())
}
