//! `POST /v1/streams/{stream}/retain`: retention by verified pruning, as `kimberlite retain`
//! makes it (admin; `docs/COMPLIANCE.md`, "Retention").

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::state::AppState;
use crate::touched::NamedStream;

/// `POST /v1/streams/{stream}/retain` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetainRequest {
    /// Drop events below this offset (whole segments only: rounded down to a segment start).
    before: u64,
}

/// What a retain did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetainView {
    /// The offset asked for.
    before: u64,
    /// The first offset the stream holds now.
    first_offset: u64,
    /// The first offset it held before.
    previous_first_offset: u64,
    /// Events dropped by this call (0 when no whole segment lay below `before`).
    events_dropped: u64,
    /// The size of the kept checkpoint that covers the cut.
    checkpoint_size: u64,
}

/// Drop the stream's oldest whole segments below `before`, once a kept signed checkpoint
/// covers it (admin).
#[utoipa::path(post, path = "/v1/streams/{stream}/retain", params(("stream" = String, Path)),
    request_body = RetainRequest,
    responses((status = 200, body = RetainView),
        (status = 404, description = "no such stream"),
        (status = 409, description = "refused: no kept checkpoint covers it, or past the head")))]
pub(crate) async fn retain(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Json(request): Json<RetainRequest>,
) -> Result<(Extension<NamedStream>, Json<RetainView>), ApiError> {
    check_stream_name(&name)?;
    principal.require(Permission::Admin, &name)?;
    state.refuse_in_cluster(
        "retention is not served in cluster mode yet: it would drop events from one replica \
         outside the Raft log, and the replicas would diverge",
    )?;
    let named = NamedStream(name.clone());
    let retained = state
        .with_store(move |store| {
            let id = store
                .stream(&name)
                .ok_or(kimberlite::Error::StreamNotFound { name })?;
            Ok(store.retain(id, kimberlite::Offset::new(request.before))?)
        })
        .await?;
    Ok((
        Extension(named),
        Json(RetainView {
            before: retained.before.as_u64(),
            first_offset: retained.first_offset.as_u64(),
            previous_first_offset: retained.previous_first_offset.as_u64(),
            events_dropped: retained.events_dropped(),
            checkpoint_size: retained.checkpoint_size,
        }),
    ))
}
