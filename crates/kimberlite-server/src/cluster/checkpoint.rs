//! Checkpoints in cluster mode: the leader signs the tree it has applied and every replica
//! keeps the note through the Raft log (`Node::publish_checkpoint`, docs/REPLICATION.md,
//! section "Checkpoints"); a follower asked for a follower read answers the largest one it
//! keeps (docs/SERVER.md, section "Cluster mode").

use kimberlite::SignedCheckpoint;
use kimberlite_raft::{PublishError, WriteError};

use super::node::Cluster;
use super::writes::write_error;
use crate::error::ApiError;
use crate::state::AppState;

/// The checkpoint of stream `name` (the caller checked the name and the rights): on the
/// leader, published through the log (answered once it is committed and applied here); on
/// a follower, the largest this replica keeps, else a redirect to the leader.
pub(crate) async fn signed_note(
    state: &AppState,
    cluster: &Cluster,
    name: String,
) -> Result<String, ApiError> {
    let key = state.signing().key.clone().ok_or_else(|| {
        ApiError::NotFound(
            "this cluster signs no checkpoints: start every node with `kimberlite serve \
             --signing-key FILE --store-name NAME` (the same key file and name on each node)"
                .into(),
        )
    })?;
    let stream = name.clone();
    let id = state
        .with_store(move |store| {
            store
                .stream(&stream)
                .ok_or(ApiError::Store(kimberlite::Error::StreamNotFound {
                    name: stream,
                }))
        })
        .await?;
    if !cluster.is_leader() {
        // Only a follower read gets here (the gate sends the others to the leader).
        let kept: Option<SignedCheckpoint> = state
            .with_store(move |store| Ok(store.latest_signed_checkpoint(id)?))
            .await?;
        return match kept {
            Some(kept) => Ok(kept.note),
            None => Err(write_error(
                cluster,
                &name,
                WriteError::NotLeader {
                    leader: cluster.leader(),
                },
            )),
        };
    }
    let origin = state.signing().origin(&name);
    match cluster
        .node()
        .publish_checkpoint(id.as_u64(), &origin, &key)
        .await
    {
        Ok(published) => Ok(published.note),
        Err(PublishError::Write(error)) => Err(write_error(cluster, &name, error)),
        Err(PublishError::Store(error)) => Err(ApiError::Store(error)),
    }
}
