//! `GET /v1/streams/{stream}/receipt?offset=N`: a receipt for an event, a C2SP tlog proof
//! (`c2sp.org/tlog-proof`) that `kimberlite verify-proof` checks offline (docs/PROOFS.md,
//! "For auditors").
//!
//! Built against the largest checkpoint witnesses cosigned that covers the event, else against
//! a checkpoint of the current head signed now with the server's key. The
//! [`WITNESSED_HEADER`] says which (`true` or `false`), and [`TREE_SIZE_HEADER`] gives the
//! checkpoint's size. 404 when no checkpoint can cover the event: no cosigned one does and
//! the server has no signing key, or the event is past the stream's durable end.

use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kimberlite::Error;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::query::ApiQuery;
use crate::state::AppState;
use crate::touched::Touched;

/// `true` when the receipt's checkpoint carries witnesses' cosignatures, `false` when it was
/// signed for this answer and no witness has seen it yet.
pub(crate) const WITNESSED_HEADER: &str = "kimberlite-witnessed";
/// The tree size of the receipt's checkpoint.
pub(crate) const TREE_SIZE_HEADER: &str = "kimberlite-tree-size";

/// Query of a receipt.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiptQuery {
    /// The event's offset.
    offset: u64,
}

/// A receipt for the event at `offset`: a C2SP tlog proof, as `kimberlite prove --receipt`
/// writes it (read).
#[utoipa::path(get, path = "/v1/streams/{stream}/receipt",
    params(("stream" = String, Path), ReceiptQuery),
    responses((status = 200, content_type = "text/plain", body = String,
        description = "a C2SP tlog proof: c2sp.org/tlog-proof@v1, extra (the leaf hash), \
        index, the inclusion path, an empty line, the (cosigned) checkpoint; header \
        `Kimberlite-Witnessed: true|false`, `Kimberlite-Tree-Size: N`"),
        (status = 404, description = "no such stream, or no checkpoint covers the event (past \
        the durable end, or none cosigned and no signing key)")))]
pub(crate) async fn receipt(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ReceiptQuery>,
) -> Result<Response, ApiError> {
    check_stream_name(&name)?;
    let place = state.place(&name);
    principal.require(Permission::Read, &name)?;
    let origin = state.signing().origin(&name);
    let key = state.signing().key.clone();
    let has_key = key.is_some();
    let offset = query.offset;
    // Witnessed means the stream's quorum met, not merely some cosignature kept.
    let policy = state
        .witnessing()
        .and_then(|witnessing| witnessing.policy(&name))
        .cloned();
    let built = state
        .with_store_at(place, move |store| {
            let id = store.stream(&name).ok_or(Error::StreamNotFound { name })?;
            Ok(store.event_receipt(id, offset, &origin, key.as_ref(), policy.as_deref())?)
        })
        .await?;
    let Some(built) = built else {
        return Err(ApiError::NotFound(if has_key {
            format!("no checkpoint covers offset {offset}: it is past the stream's durable end")
        } else {
            format!(
                "no cosigned checkpoint covers offset {offset} and this server signs no \
                 checkpoints: start it with `kimberlite serve --signing-key FILE`, or wait \
                 for witnesses to cosign a checkpoint that covers it"
            )
        }));
    };
    let mut response = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                HeaderName::from_static(WITNESSED_HEADER),
                HeaderValue::from_static(if built.witnessed { "true" } else { "false" }),
            ),
            (
                HeaderName::from_static(TREE_SIZE_HEADER),
                HeaderValue::from(built.tree_size),
            ),
        ],
        built.receipt.to_text(),
    )
        .into_response();
    response.extensions_mut().insert(Touched {
        from: offset,
        to: offset + 1,
    });
    Ok(response)
}
