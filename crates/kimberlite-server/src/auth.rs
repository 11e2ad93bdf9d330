//! Authentication: `Authorization: Bearer <token>`, or else a verified client certificate
//! whose common name names a key, to a [`Principal`]; 401 otherwise.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::access_log::Authenticated;
use crate::client_cert::ClientCertName;
use crate::error::ApiError;
use crate::keys::AuthFailure;
use crate::principal::Principal;
use crate::state::AppState;

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(Authenticated(principal)) = parts.extensions.remove::<Authenticated>() {
            return Ok(principal);
        }
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            if let Some(ClientCertName(name)) = parts.extensions.get::<ClientCertName>() {
                return state.keys().authenticate_name(name).map_err(|failure| {
                    refusal(failure, &format!("client certificate CN={name:?}: "))
                });
            }
            return Err(ApiError::Unauthorized(
                "no Authorization header: send `Authorization: Bearer <token>`".into(),
            ));
        };
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
            .map_err(|failure| refusal(failure, ""))
    }
}

fn refusal(failure: AuthFailure, context: &str) -> ApiError {
    match failure {
        AuthFailure::KeyFileBroken(_) => ApiError::Unavailable(failure.to_string()),
        AuthFailure::Unknown if !context.is_empty() => {
            ApiError::Unauthorized(format!("{context}no active key has this name"))
        }
        _ => ApiError::Unauthorized(format!("{context}{failure}")),
    }
}
