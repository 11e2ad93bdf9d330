//! `GET /v1/streams/{stream}/proofs/inclusion` and `.../proofs/consistency`: Merkle proofs as
//! the JSON bundles `kimberlite prove` and `kimberlite prove-consistency` print, so
//! `kimberlite verify-proof` checks a proof fetched here against a signed checkpoint.
//!
//! Offsets and tree sizes out of range (an offset at or past the tree size, a tree size past
//! the stream's durable end, an old size above the new) are 400s naming the range; a stored
//! tree that disagrees with the log is refused (`corrupt`), never proved from.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use kimberlite::proof::{ConsistencyBundle, InclusionBundle, CONSISTENCY_FORMAT};
use kimberlite::{Error, Offset, TreeEvidence};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::query::ApiQuery;
use crate::state::AppState;
use crate::touched::Touched;

/// Query of an inclusion proof.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct InclusionQuery {
    /// The event's offset.
    offset: u64,
    /// The tree size to prove against (default: the stream's current size); use the size of
    /// the checkpoint the verifier holds.
    tree_size: Option<u64>,
}

/// Query of a consistency proof.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyQuery {
    /// The old tree size (e.g. an earlier checkpoint's), at least 1.
    old: u64,
    /// The new tree size, at most the stream's current size.
    new: u64,
}

/// An event and its inclusion proof, as `kimberlite prove` prints it (read).
#[utoipa::path(get, path = "/v1/streams/{stream}/proofs/inclusion",
    params(("stream" = String, Path), InclusionQuery),
    responses((status = 200, body = Object, description = "the `kimberlite-inclusion-proof/v1` \
        bundle: format, origin, offset, payload_base64, leaf_hash, tree_size, root, proof"),
        (status = 400, description = "offset or tree size out of range"), (status = 404)))]
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<InclusionQuery>,
) -> Result<(Extension<Touched>, Json<InclusionBundle>), ApiError> {
    check_stream_name(&name)?;
    let place = state.place(&name);
    principal.require(Permission::Read, &name)?;
    let origin = state.signing().origin(&name);
    let offset = query.offset;
    let bundle = state
        .with_store_at(place, move |store| {
            let id = store
                .stream(&name)
                .ok_or_else(|| Error::StreamNotFound { name: name.clone() })?;
            let size = match query.tree_size {
                Some(size) => size,
                None => store.head(id)?.next_offset.as_u64(),
            };
            let proof = store.inclusion_proof(id, Offset::new(offset), size)?;
            let event = store
                .read(id, Offset::new(offset), 1)?
                .into_iter()
                .next()
                .filter(|event| event.offset.as_u64() == offset)
                .ok_or_else(|| ApiError::BadRequest(format!("no event at offset {offset}")))?;
            let bundle = InclusionBundle::new(
                &origin,
                offset,
                &event.payload,
                proof.tree_size,
                proof.root,
                proof.hashes,
            );
            if bundle.leaf_hash != proof.leaf_hash {
                return Err(Error::TreeDamaged {
                    name,
                    stream: id,
                    evidence: TreeEvidence::Inclusion {
                        offset: Offset::new(offset),
                        tree_size: proof.tree_size,
                    },
                    reason: "the stored leaf is not the hash of the log's event".into(),
                }
                .into());
            }
            Ok(bundle)
        })
        .await?;
    let touched = Touched {
        from: offset,
        to: offset + 1,
    };
    Ok((Extension(touched), Json(bundle)))
}

/// A consistency proof between two tree sizes, as `kimberlite prove-consistency` prints it
/// (read).
#[utoipa::path(get, path = "/v1/streams/{stream}/proofs/consistency",
    params(("stream" = String, Path), ConsistencyQuery),
    responses((status = 200, body = Object, description = "the \
        `kimberlite-consistency-proof/v1` bundle: format, origin, old_size, old_root, \
        new_size, new_root, proof"),
        (status = 400, description = "sizes out of range, or old > new"), (status = 404)))]
pub(crate) async fn consistency(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyBundle>, ApiError> {
    check_stream_name(&name)?;
    let place = state.place(&name);
    principal.require(Permission::Read, &name)?;
    if query.old > query.new {
        return Err(ApiError::BadRequest(format!(
            "old tree size {} is above the new tree size {}: a consistency proof goes from an \
             older (smaller) tree to a newer one",
            query.old, query.new
        )));
    }
    let origin = state.signing().origin(&name);
    let bundle = state
        .with_store_at(place, move |store| {
            let id = store.stream(&name).ok_or(Error::StreamNotFound { name })?;
            let proof = store.consistency_proof(id, query.old, query.new)?;
            Ok(ConsistencyBundle {
                format: CONSISTENCY_FORMAT.to_owned(),
                origin,
                old_size: proof.old_size,
                old_root: proof.old_root,
                new_size: proof.new_size,
                new_root: proof.new_root,
                proof: proof.hashes,
            })
        })
        .await?;
    Ok(Json(bundle))
}
