//! `GET /v1/streams/{stream}/checkpoint`: a signed C2SP checkpoint of the stream's current
//! durable tree head, as `kimberlite checkpoint` signs it.
//!
//! Signed with the server's key (`kimberlite serve --signing-key FILE`) under the stream's
//! origin as key name (`kimberlite_proof::signing`), and kept in the store's `checkpoints/`
//! before it is answered, as the CLI keeps it: the store reads it back at open as evidence of
//! the stream's length, and `kimberlite audit` takes it. Without a key the route answers 404
//! with `kind: not_found` and says how to start the server with one. In cluster mode the
//! leader publishes it through the Raft log instead (`crate::cluster::signed_note`).

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use kimberlite::SignedCheckpoint;

use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::state::AppState;

/// The checkpoint's content type.
const NOTE_TYPE: &str = "text/plain; charset=utf-8";

/// A signed checkpoint of the stream's current tree head (read).
#[utoipa::path(get, path = "/v1/streams/{stream}/checkpoint", params(("stream" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String,
        description = "a C2SP signed note: origin, tree size, root, then the signature"),
        (status = 404, description = "no such stream, or the server has no signing key")))]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    let note = signed_note(&state, &principal, name).await?;
    Ok(([(CONTENT_TYPE, NOTE_TYPE)], note))
}

/// The stream's checkpoint, signed and kept: what this route and the tiles view's
/// `checkpoint` answer.
pub(crate) async fn signed_note(
    state: &AppState,
    principal: &Principal,
    name: String,
) -> Result<String, ApiError> {
    check_stream_name(&name)?;
    principal.require(Permission::Read, &name)?;
    if let (Some(cluster), false) = (state.cluster(), state.place(&name).is_node_local()) {
        return crate::cluster::signed_note(state, &cluster, name).await;
    }
    Ok(sign(state, name).await?.note)
}

/// Signs and keeps a checkpoint of stream `name`, and hands it to its witnesses (if it has a
/// policy; they are asked in the background). What the routes and the background
/// checkpointer sign through; the caller checks the name and the rights.
pub(crate) async fn sign(state: &AppState, name: String) -> Result<SignedCheckpoint, ApiError> {
    // In cluster mode the routes publish through the log (`crate::cluster::signed_note`):
    // signing here would keep a checkpoint in one replica only. What is left is the
    // node-local access log, and the witnessing checkpointer (refused at start).
    state.refuse_in_cluster(
        "in cluster mode the node-local access log has no checkpoint (each node's is a log \
         of its own, and they would share one origin and key); the replicated streams' \
         checkpoints are published through the Raft log",
    )?;
    let key = state.signing().key.clone().ok_or_else(|| {
        ApiError::NotFound(
            "this server signs no checkpoints: start it with `kimberlite serve --signing-key \
             FILE` (a key from `kimberlite keygen`)"
                .into(),
        )
    })?;
    let origin = state.signing().origin(&name);
    let place = state.place(&name);
    let stream = name.clone();
    let signed = state
        .with_store_at(place, move |store| {
            let id = store
                .stream(&name)
                .ok_or(kimberlite::Error::StreamNotFound { name })?;
            Ok(store.sign_checkpoint(id, &origin, &key)?)
        })
        .await?;
    state.have_witnessed(&stream, &signed);
    Ok(signed)
}
