//! `/v1/keys`: list, add and revoke keys (admin on `*`). A new key's token is in the answer
//! to its creation and nowhere else; lists carry ids, names and grants, never tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::keys::{rfc3339, KeyEntry, KeyFileError, KeyRing};
use crate::principal::{Grant, Principal};
use crate::state::AppState;

/// `POST /v1/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    /// A label, unique among keys not revoked; a client certificate with this common name
    /// authenticates as the key.
    name: String,
    /// What the key may do.
    grants: Vec<Grant>,
}

/// A key as the API shows it (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    /// The key's id.
    id: String,
    /// The key's name.
    name: String,
    /// What the key may do.
    grants: Vec<Grant>,
    /// When it was added (RFC 3339, UTC).
    created: String,
    /// Whether it is revoked.
    revoked: bool,
}

impl KeyView {
    fn of(entry: KeyEntry) -> Self {
        Self {
            created: rfc3339(entry.created_unix_s),
            id: entry.id,
            name: entry.name,
            grants: entry.grants,
            revoked: entry.revoked,
        }
    }
}

/// The answer to `POST /v1/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedKey {
    /// The key.
    key: KeyView,
    /// Its token: shown this once, kept nowhere (the server stores its SHA-256).
    token: String,
}

impl From<KeyFileError> for ApiError {
    fn from(error: KeyFileError) -> Self {
        match error {
            KeyFileError::UnknownKey(_) => Self::NotFound(error.to_string()),
            KeyFileError::Invalid(_) => Self::BadRequest(error.to_string()),
            KeyFileError::Damaged { .. } => Self::Unavailable(error.to_string()),
            _ => Self::Internal(error.to_string()),
        }
    }
}

/// Runs `work` on the key ring on the blocking pool: key changes read, lock and sync a file.
async fn with_keys<T: Send + 'static>(
    state: AppState,
    work: impl FnOnce(&KeyRing) -> Result<T, KeyFileError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || work(state.keys()))
        .await
        .map_err(|join| ApiError::Internal(format!("a key task failed: {join}")))?
        .map_err(ApiError::from)
}

/// List every key, revoked ones included (admin on `*`).
#[utoipa::path(get, path = "/v1/keys", responses((status = 200, body = [KeyView])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    principal.require_admin_everywhere()?;
    let keys = with_keys(state, KeyRing::list).await?;
    Ok(Json(keys.into_iter().map(KeyView::of).collect()))
}

/// Add a key (admin on `*`); the answer holds its token, shown once.
#[utoipa::path(post, path = "/v1/keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, description = "bad name or grant, or the name is in use")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(request): Json<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    principal.require_admin_everywhere()?;
    let added = with_keys(state, move |keys| keys.add(&request.name, request.grants)).await?;
    tracing::info!(by = %principal.key_id, key = %added.entry.id, "key added");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: KeyView::of(added.entry),
            token: added.token,
        }),
    ))
}

/// Revoke a key (admin on `*`): refused from the next request on.
#[utoipa::path(delete, path = "/v1/keys/{id}", params(("id" = String, Path, description = "the key's id")),
    responses((status = 200, body = KeyView), (status = 404, description = "no key has this id")))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    principal.require_admin_everywhere()?;
    let revoked = with_keys(state, move |keys| keys.revoke(&id)).await?;
    tracing::info!(by = %principal.key_id, key = %revoked.id, "key revoked");
    Ok(Json(KeyView::of(revoked)))
}
