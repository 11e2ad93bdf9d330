//! `/v1/streams`: create, list and show streams.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::names::{check_new_stream_name, check_stream_name};
use crate::principal::{Permission, Principal};
use crate::state::AppState;
use crate::touched::NamedStream;

/// `POST /v1/streams` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateStream {
    /// The new stream's name.
    name: String,
}

/// A stream as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StreamView {
    /// The stream's name.
    name: String,
    /// Offset the next event gets (= durable events in the stream).
    next_offset: u64,
    /// Chain hash of the last event (hex), absent while empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    head: Option<String>,
    /// The store found the stream's records damaged at open: appends are refused.
    damaged: bool,
}

impl StreamView {
    fn of(info: &kimberlite::StreamInfo) -> Self {
        Self {
            name: info.name.clone(),
            next_offset: info.head.next_offset.as_u64(),
            head: info.head.hash.map(|hash| hash.to_string()),
            damaged: info.damaged,
        }
    }
}

/// Create a stream (admin).
#[utoipa::path(post, path = "/v1/streams", request_body = CreateStream,
    responses((status = 201, body = StreamView), (status = 409, description = "the stream exists")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Json(request): Json<CreateStream>,
) -> Result<(StatusCode, Extension<NamedStream>, Json<StreamView>), ApiError> {
    check_new_stream_name(&request.name)?;
    principal.require(Permission::Admin, &request.name)?;
    let named = NamedStream(request.name.clone());
    if let Some(cluster) = state.cluster() {
        // Through the leader: a Raft log entry every replica applies.
        let id = crate::cluster::request_id(&headers)?;
        crate::cluster::create_stream(&cluster, id, &request.name).await?;
        let view = state
            .with_store(move |store| stream_view(store, &request.name))
            .await?;
        return Ok((StatusCode::CREATED, Extension(named), Json(view)));
    }
    let view = state
        .with_store(move |store| {
            store.create_stream(&request.name)?;
            stream_view(store, &request.name)
        })
        .await?;
    Ok((StatusCode::CREATED, Extension(named), Json(view)))
}

/// List the streams this key may read or append to.
#[utoipa::path(get, path = "/v1/streams", responses((status = 200, body = [StreamView])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<StreamView>>, ApiError> {
    let streams = state.list_streams().await?;
    Ok(Json(
        streams
            .iter()
            .filter(|info| {
                principal.may(Permission::Read, &info.name)
                    || principal.may(Permission::Append, &info.name)
            })
            .map(StreamView::of)
            .collect(),
    ))
}

/// Show one stream (read or append).
#[utoipa::path(get, path = "/v1/streams/{stream}", params(("stream" = String, Path)),
    responses((status = 200, body = StreamView), (status = 404)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    check_stream_name(&name)?;
    let place = state.place(&name);
    if !principal.may(Permission::Append, &name) {
        principal.require(Permission::Read, &name)?;
    }
    Ok(Json(
        state
            .with_store_at(place, move |store| stream_view(store, &name))
            .await?,
    ))
}

fn stream_view(store: &kimberlite::Kimberlite, name: &str) -> Result<StreamView, ApiError> {
    store
        .list_streams()
        .iter()
        .find(|info| info.name == name)
        .map(StreamView::of)
        .ok_or_else(|| {
            kimberlite::Error::StreamNotFound {
                name: name.to_owned(),
            }
            .into()
        })
}
