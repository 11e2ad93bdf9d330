//! Each stream's C2SP tlog-tiles read API under `/v1/streams/{stream}/tlog/`, so that C2SP
//! clients and monitors can follow it (docs/PROOFS.md, "The tiles view"):
//!
//! | path                        | content type                | `Cache-Control`                         |
//! |-----------------------------|-----------------------------|-----------------------------------------|
//! | `checkpoint`                | `text/plain; charset=utf-8` | `no-store` (it moves with every append) |
//! | `tile/<L>/<N>`              | `application/octet-stream`  | `private, max-age=31536000, immutable`  |
//! | `tile/<L>/<N>.p/<W>`        | `application/octet-stream`  | `private, max-age=60`                   |
//! | `tile/entries/<N>[.p/<W>]`  | as the tiles                | as the tiles                            |
//!
//! Full tiles and bundles never change; a partial one does not either, but the spec lets a log
//! drop it once the full one exists, so it is kept only briefly. `private`: every request
//! carries a key, so no shared cache may answer another client with it.
//!
//! The store decides what is served: tiles are checked against the stream's trusted root
//! before they are given, bundles are built from verified reads, the checkpoint signs the
//! checked tree head. A malformed tile path is 400, a tile not in the tree 404, a bundle
//! holding an event over 65,535 leaf bytes 422 (`entry_too_large`, naming the offset). After
//! retention (`kimberlite retain`) a bundle that starts below the cut is 410 (`pruned`, with
//! the first kept offset as `next_offset`): the first bundle served is the first wholly at or
//! above the cut. Hash tiles are all still served: the tree's side files are kept.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kimberlite::proof::{parse_tile_path, TileId, TilePath};

use crate::api::witnessed::latest_witnessed;
use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::state::AppState;
use crate::touched::Touched;

/// `Cache-Control` of a full tile or bundle.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";
/// `Cache-Control` of a partial tile or bundle.
const SHORT_LIVED: &str = "private, max-age=60";
/// `Cache-Control` of the checkpoint.
const NO_STORE: &str = "no-store";

/// The stream's checkpoint, signed by the server's key named as the origin, as
/// `/v1/streams/{stream}/checkpoint` answers it; for a stream with a witness policy, its
/// latest witnessed checkpoint with the cosignatures, once there is one (read).
#[utoipa::path(get, path = "/v1/streams/{stream}/tlog/checkpoint",
    params(("stream" = String, Path)),
    responses((status = 200, content_type = "text/plain", description = "a C2SP signed note"),
        (status = 404, description = "no such stream, or the server signs no checkpoints")))]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let policy = state
        .witnessing()
        .and_then(|witnessing| witnessing.policy(&name))
        .cloned();
    let mut note = crate::api::checkpoint::signed_note(&state, &principal, name.clone()).await?;
    // A witnessed stream shows its latest witnessed checkpoint, cosignatures included (C2SP
    // lets a note carry them): what a client holding the witness policy can trust. Until one
    // is witnessed, the one just signed.
    if let Some(policy) = policy {
        if let Some(witnessed) = latest_witnessed(&state, name, &policy).await? {
            note = witnessed.note;
        }
    }
    Ok(answer(
        "text/plain; charset=utf-8",
        NO_STORE,
        note.into_bytes(),
    ))
}

/// A tile or an entry bundle of the stream (read).
#[utoipa::path(get, path = "/v1/streams/{stream}/tlog/tile/{path}",
    params(("stream" = String, Path), ("path" = String, Path, description = "<L>/<N>[.p/<W>] or entries/<N>[.p/<W>]")),
    responses((status = 200, content_type = "application/octet-stream"),
        (status = 400, description = "not a tile path"),
        (status = 404, description = "no such stream, or a tile not in its tree"),
        (status = 422, description = "a bundle holding an event over 65,535 leaf bytes")))]
pub(crate) async fn tile(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, rest)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_stream_name(&name)?;
    let place = state.place(&name);
    principal.require(Permission::Read, &name)?;
    let path = format!("tile/{rest}");
    let resource = parse_tile_path(&path)
        .map_err(|error| ApiError::BadRequest(format!("{path:?}: {error}")))?;
    let bytes = state
        .with_store_at(place, move |store| {
            let id = store
                .stream(&name)
                .ok_or(kimberlite::Error::StreamNotFound { name })?;
            Ok(match resource {
                TilePath::Hashes(tile) => {
                    let head = store.tree_head(id)?;
                    store.tile(id, head.tree_size, tile)?
                }
                TilePath::Entries(bundle) => {
                    store.entry_bundle(id, bundle.index(), bundle.width())?
                }
            })
        })
        .await?;
    let tile = match resource {
        TilePath::Hashes(tile) | TilePath::Entries(tile) => tile,
    };
    let cache = if tile.is_full() {
        IMMUTABLE
    } else {
        SHORT_LIVED
    };
    let mut response = answer("application/octet-stream", cache, bytes);
    if let TilePath::Entries(bundle) = resource {
        response.extensions_mut().insert(touched(bundle));
    }
    Ok(response)
}

/// The events a bundle holds.
fn touched(bundle: TileId) -> Touched {
    let (from, to) = bundle.leaf_range().unwrap_or_default();
    Touched { from, to }
}

fn answer(content_type: &'static str, cache: &'static str, body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}
