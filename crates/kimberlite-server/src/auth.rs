//! Authentication: `Authorization: Bearer <token>` to a [`Principal`], or 401.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::principal::Principal;
use crate::state::AppState;

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "no Authorization header: send `Authorization: Bearer <token>`".into(),
                )
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header is not `Bearer <token>`".into())
            })?;
        state
            .keys()
            .authenticate(token.trim())
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked key".into()))
    }
}
