//! `POST /v1/erasures`: erase a data subject (`docs/COMPLIANCE.md`, "Erasure"): its data key is
//! destroyed, the erasure recorded in `_erasure`, and the receipt returned. Admin on every
//! stream only; the server needs its master key (`kimberlite serve --master-key`). The subject
//! travels in the body, not the path, so that the access log (which records the route and the
//! `_erasure` offset written) never holds it.

use axum::extract::State;
use axum::{Extension, Json};
use kimberlite::sealed::ERASURE_STREAM;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::principal::Principal;
use crate::state::AppState;
use crate::touched::{NamedStream, Touched};

/// What to erase.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseRequest {
    /// The data subject, as given to appends (`?subject=`).
    subject: String,
}

/// The receipt of an erasure.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ErasureReceiptView {
    /// The destroyed data key's id (hex).
    pub(crate) key_id: String,
    /// Events sealed under it, as the key store counted them.
    pub(crate) events: u64,
    /// The erasure event's offset in `_erasure`.
    pub(crate) offset: u64,
    /// Its chain hash (hex).
    pub(crate) chain_hash: String,
    /// Its Merkle leaf hash (hex): what its inclusion proof proves.
    pub(crate) leaf_hash: String,
    /// When, RFC 3339 UTC.
    pub(crate) erased_at: String,
}

/// Erase a data subject (admin on every stream).
#[utoipa::path(post, path = "/v1/erasures", request_body = EraseRequest,
    responses((status = 200, body = ErasureReceiptView),
        (status = 404, description = "no such subject under the server's master key"),
        (status = 409, description = "erased already"),
        (status = 400, description = "the server has no master key")))]
pub(crate) async fn erase(
    State(state): State<AppState>,
    principal: Principal,
    Json(request): Json<EraseRequest>,
) -> Result<
    (
        Extension<Touched>,
        Extension<NamedStream>,
        Json<ErasureReceiptView>,
    ),
    ApiError,
> {
    principal.require_admin_everywhere()?;
    state.refuse_in_cluster(
        "erasure is not served in cluster mode yet: it would change one replica's keys \
         outside the Raft log, and the replicas would diverge",
    )?;
    let keys = state.subjects()?;
    let by = principal.key_id.clone();
    let receipt = state
        .with_store(move |_| Ok(keys.erase(&request.subject, &by)?))
        .await?;
    let offset = receipt.offset.as_u64();
    Ok((
        Extension(Touched {
            from: offset,
            to: offset + 1,
        }),
        Extension(NamedStream(ERASURE_STREAM.to_owned())),
        Json(ErasureReceiptView {
            key_id: receipt.key_id.to_hex(),
            events: receipt.events,
            offset,
            chain_hash: receipt.chain_hash.to_string(),
            leaf_hash: receipt.leaf_hash.to_string(),
            erased_at: crate::rfc3339(receipt.erased_at_unix_s),
        }),
    ))
}
