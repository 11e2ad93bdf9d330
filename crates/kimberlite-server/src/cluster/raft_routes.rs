//! The receiving side of [`super::HttpTransport`]: `POST /v1/raft/{append-entries,vote,
//! snapshot}`, each body one message handed to this node's Raft and its answer sent back, for
//! callers presenting the cluster secret (never API keys). Internal: not in the OpenAPI
//! document.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use kimberlite_raft::openraft::raft::{AppendEntriesRequest, VoteRequest};
use kimberlite_raft::openraft::Snapshot;
use kimberlite_raft::{NodeId, TypeConfig};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::node::Cluster;
use super::transport::SnapshotMessage;
use super::wire;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest Raft message body: a batch of log entries, or a whole snapshot image.
const RAFT_BODY_MAX: usize = 1 << 30;

/// The Raft routes' paths: append entries, vote, snapshot.
const PATHS: [&str; 3] = [
    "/v1/raft/append-entries",
    "/v1/raft/vote",
    "/v1/raft/snapshot",
];

/// The Raft routes, for a server in cluster mode.
pub(crate) fn routes() -> Router<AppState> {
    let [append_entries_path, vote_path, snapshot_path] = PATHS;
    Router::new()
        .route(append_entries_path, post(append_entries))
        .route(vote_path, post(vote))
        .route(snapshot_path, post(snapshot))
}

/// Whether `path` is a Raft route's: those are outside the request metrics and timeout
/// (`router.rs`).
pub(crate) fn is_raft_path(path: &str) -> bool {
    PATHS.contains(&path)
}

/// The cluster of a request to a Raft route, once its secret is checked.
fn authorized(state: &AppState, headers: &HeaderMap) -> Result<Arc<Cluster>, ApiError> {
    let cluster = state
        .cluster()
        .ok_or_else(|| ApiError::NotFound("this server is not in cluster mode".into()))?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized("the Raft routes need `Authorization: Bearer <secret>`".into())
        })?;
    // Hashes of equal length, compared in constant time: neither the secret nor its length
    // leaks through timing.
    let equal: bool = Sha256::digest(presented.trim().as_bytes())
        .ct_eq(&Sha256::digest(cluster.secret().as_bytes()))
        .into();
    if !equal {
        return Err(ApiError::Unauthorized(
            "wrong cluster secret (--cluster-token-file)".into(),
        ));
    }
    Ok(cluster)
}

/// The message of `request`, read only once its secret is checked (a caller without it
/// cannot make this node buffer a large body).
async fn message<T: serde::de::DeserializeOwned>(
    state: &AppState,
    request: Request,
) -> Result<(Arc<Cluster>, T), ApiError> {
    let cluster = authorized(state, request.headers())?;
    let body: Bytes = axum::body::to_bytes(request.into_body(), RAFT_BODY_MAX)
        .await
        .map_err(|error| {
            ApiError::BadRequest(format!(
                "the message could not be read (at most {RAFT_BODY_MAX} bytes): {error}"
            ))
        })?;
    let message =
        wire::decode_shared(&body).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    Ok((cluster, message))
}

fn answer<T: serde::Serialize>(value: &T) -> Response {
    match wire::encode(value) {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, wire::CONTENT_TYPE)],
            bytes,
        )
            .into_response(),
        Err(error) => ApiError::Internal(error.to_string()).into_response(),
    }
}

async fn append_entries(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (cluster, request): (_, AppendEntriesRequest<TypeConfig>) =
        message(&state, request).await?;
    Ok(answer(&cluster.node().raft().append_entries(request).await))
}

async fn vote(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (cluster, request): (_, VoteRequest<NodeId>) = message(&state, request).await?;
    Ok(answer(&cluster.node().raft().vote(request).await))
}

async fn snapshot(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (cluster, (vote, meta, image)): (_, SnapshotMessage) = message(&state, request).await?;
    let snapshot = Snapshot::<TypeConfig> {
        meta,
        snapshot: Box::new(image),
    };
    Ok(answer(
        &cluster
            .node()
            .raft()
            .install_full_snapshot(vote, snapshot)
            .await,
    ))
}
