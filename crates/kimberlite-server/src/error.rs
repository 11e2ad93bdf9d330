//! Errors as HTTP answers: a status and a JSON body naming what went wrong.
//!
//! Every error body is `{"error": {"kind": ..., "message": ..., "stream"?: ...,
//! "offset"?: ..., "next_offset"?: ...}}`; `kind` is stable for programs, `message` is for
//! people. Data errors name the stream and offset they concern, as the store's errors do.
//!
//! | error                                    | status | kind                |
//! |------------------------------------------|--------|---------------------|
//! | no, unknown or revoked key               | 401    | `unauthorized`      |
//! | key lacks the permission                 | 403    | `forbidden`         |
//! | malformed body, name, query              | 400    | `bad_request`       |
//! | unknown stream                           | 404    | `not_found`         |
//! | stream exists / expected offset conflict | 409    | `conflict`          |
//! | checkpoint not extending the last signed | 409    | `conflict`          |
//! | body, batch or event over a limit        | 413    | `too_large`         |
//! | body not of an accepted type             | 415    | `unsupported_media` |
//! | a tile not in the stream's tree          | 404    | `not_found`         |
//! | an entry bundle holding an event over    | 422    | `entry_too_large`   |
//! | 65,535 leaf bytes (offset named)         |        |                     |
//! | stored data damaged                      | 500    | `corrupt`           |
//! | a kept cosigned checkpoint unreadable    | 500    | `corrupt`           |
//! | store refuses writes (fail-stop)         | 503    | `unavailable`       |
//! | key file unreadable (every key refused)  | 503    | `unavailable`       |
//! | access log cannot record (fail-closed)   | 503    | `unavailable`       |
//! | cluster: a write or read on a follower   | 307    | (Location: leader)  |
//! | cluster: no leader known                 | 503    | `no_leader`         |
//! | cluster: a write's outcome unknown       | 503    | `outcome_unknown`   |
//! | cluster: a feature not served in a cluster | 501  | `not_in_cluster`    |
//! | anything else                            | 500    | `internal`          |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error answered to a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No key, an unknown key or a revoked key.
    #[error("{0}")]
    Unauthorized(String),
    /// The key is valid but lacks the permission. Said the same way whether the stream
    /// exists or not, so a key learns nothing about streams it may not see.
    #[error("this key may not {operation} stream {stream:?}")]
    Forbidden {
        /// What was refused (`append`, `read`, `admin`).
        operation: &'static str,
        /// The stream asked for.
        stream: String,
    },
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such route.
    #[error("{0}")]
    NotFound(String),
    /// The request's body is not of a type the route accepts.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// The request is over a limit.
    #[error("{0}")]
    TooLarge(String),
    /// The store refused or failed the operation.
    #[error(transparent)]
    Store(#[from] kimberlite::Error),
    /// The server cannot serve the request now: its key file became unreadable, it is
    /// stopping, or its access log cannot record requests (`docs/SERVER.md`, "Access log").
    #[error("{0}")]
    Unavailable(String),
    /// The server failed (a task panicked, a response could not be built).
    #[error("internal error: {0}")]
    Internal(String),
    /// Cluster mode: this node does not lead; `url` is the leader's base URL when one is
    /// known (a 307 there), else 503 `no_leader`.
    #[error("{}", match url { Some(url) => format!("this node does not lead; the leader is {url}"), None => "no leader is known now (an election is under way); retry".to_owned() })]
    NotLeader {
        /// The leader's base URL.
        url: Option<String>,
    },
    /// Cluster mode: the write may or may not have happened (the leader was lost mid-way);
    /// a retry with the same request id gets the first answer.
    #[error("the write's outcome is unknown ({0}); retry with the same Kimberlite-Request-Id")]
    OutcomeUnknown(String),
    /// Cluster mode: a membership change refused (a change in progress, an unknown learner).
    #[error("{0}")]
    Conflict(String),
    /// Cluster mode: the route cannot be served by a replica yet.
    #[error("{0}")]
    NotInCluster(String),
}

/// The leader's base URL a 307 points to; the cluster gate adds the request's path and query.
#[derive(Debug, Clone)]
pub(crate) struct LeaderUrl(pub(crate) String);

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    kind: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<u64>,
}

impl ApiError {
    /// The status and the stable `kind` this error is answered with.
    #[must_use]
    pub fn status_and_kind(&self) -> (StatusCode, &'static str) {
        use kimberlite::Error as E;
        match self {
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::UnsupportedMedia(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::NotLeader { url: Some(_) } => (StatusCode::TEMPORARY_REDIRECT, "not_leader"),
            Self::NotLeader { url: None } => (StatusCode::SERVICE_UNAVAILABLE, "no_leader"),
            Self::OutcomeUnknown(_) => (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::NotInCluster(_) => (StatusCode::NOT_IMPLEMENTED, "not_in_cluster"),
            Self::Store(error) => match error {
                E::StreamNotFound { .. } | E::UnknownStream { .. } => {
                    (StatusCode::NOT_FOUND, "not_found")
                }
                E::Tile {
                    source: kimberlite::proof::TileError::EntryTooLarge { .. },
                    ..
                } => (StatusCode::UNPROCESSABLE_ENTITY, "entry_too_large"),
                E::Tile { .. } => (StatusCode::NOT_FOUND, "not_found"),
                E::StreamExists { .. }
                | E::OffsetConflict { .. }
                | E::CheckpointConflict { .. } => (StatusCode::CONFLICT, "conflict"),
                E::InvalidStreamName { .. } | E::EmptyBatch { .. } | E::TreeRange { .. } => {
                    (StatusCode::BAD_REQUEST, "bad_request")
                }
                // Retention dropped them: gone for good, not missing by accident.
                E::Pruned { .. } => (StatusCode::GONE, "pruned"),
                E::RetainRefused { .. } => (StatusCode::CONFLICT, "conflict"),
                E::Poisoned | E::ReadOnly => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                E::Sealed(kimberlite::sealed::SealError::UnknownSubject { .. }) => {
                    (StatusCode::NOT_FOUND, "not_found")
                }
                E::Sealed(kimberlite::sealed::SealError::AlreadyErased { .. }) => {
                    (StatusCode::CONFLICT, "conflict")
                }
                E::Sealed(
                    kimberlite::sealed::SealError::LooksSealed { .. }
                    | kimberlite::sealed::SealError::EmptySubject,
                ) => (StatusCode::BAD_REQUEST, "bad_request"),
                other if other.is_corruption() => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt"),
                E::StreamDamaged { .. }
                | E::StreamLost { .. }
                | E::TreeDamaged { .. }
                | E::CatalogCorrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt"),
                // Only a kept file that does not read back as the checkpoint it is named for
                // reaches a request (the witness client keeps notes, nothing else does).
                E::UnknownCheckpoint { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }

    fn stream_and_offsets(&self) -> (Option<String>, Option<u64>, Option<u64>) {
        use kimberlite::Error as E;
        match self {
            Self::Forbidden { stream, .. } => (Some(stream.clone()), None, None),
            Self::Store(E::OffsetConflict { name, actual, .. }) => {
                (Some(name.clone()), None, Some(actual.as_u64()))
            }
            Self::Store(E::StreamNotFound { name } | E::StreamExists { name }) => {
                (Some(name.clone()), None, None)
            }
            Self::Store(E::Storage { name, .. }) => (name.clone(), None, None),
            Self::Store(E::Pruned {
                name,
                offset,
                first_offset,
            }) => (
                Some(name.clone()),
                Some(offset.as_u64()),
                Some(first_offset.as_u64()),
            ),
            Self::Store(E::UnknownCheckpoint { name, .. }) => (Some(name.clone()), None, None),
            Self::Store(E::Tile {
                name,
                source: kimberlite::proof::TileError::EntryTooLarge { offset, .. },
            }) => (Some(name.clone()), Some(*offset), None),
            _ => (None, None, None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_kind();
        // A follower without a leader during an election answers this often: not an error.
        if status.is_server_error() && !matches!(self, Self::NotLeader { .. }) {
            tracing::error!(kind, error = %self, "request failed");
        }
        let (stream, offset, next_offset) = self.stream_and_offsets();
        let leader = match &self {
            Self::NotLeader { url } => Some(url.clone()),
            _ => None,
        };
        let retry = matches!(
            self,
            Self::NotLeader { url: None } | Self::OutcomeUnknown(_)
        );
        let named = stream.clone().map(crate::touched::NamedStream);
        let body = Body {
            error: Detail {
                kind,
                message: self.to_string(),
                stream,
                offset,
                next_offset,
            },
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorKind(kind));
        if let Some(Some(url)) = leader {
            response.extensions_mut().insert(LeaderUrl(url));
        }
        if retry {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if let Some(named) = named {
            response.extensions_mut().insert(named);
        }
        response
    }
}

/// The stable `kind` of an error answer, kept in the response's extensions so that the access
/// log and the metrics name it without parsing the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorKind(pub(crate) &'static str);

impl ErrorKind {
    /// The kind of an error answered with `status`: the one the answer carries, or for answers
    /// built outside [`ApiError`] (axum's own rejections), the kind the status table gives.
    pub(crate) fn of(response: &Response) -> Option<Self> {
        let status = response.status();
        if !(status.is_client_error() || status.is_server_error()) {
            return None;
        }
        let kind = response.extensions().get::<Self>().copied();
        Some(kind.unwrap_or(Self(match status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            status if status.is_client_error() => "bad_request",
            _ => "internal",
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruned_events_are_gone_with_the_first_kept_offset() {
        let error = ApiError::Store(kimberlite::Error::Pruned {
            name: "audit".into(),
            offset: kimberlite::Offset::new(3),
            first_offset: kimberlite::Offset::new(256),
        });
        assert_eq!(error.status_and_kind(), (StatusCode::GONE, "pruned"));
        assert_eq!(
            error.stream_and_offsets(),
            (Some("audit".into()), Some(3), Some(256))
        );
    }

    #[test]
    fn an_unreadable_cosigned_checkpoint_is_corrupt_and_names_its_stream() {
        let error = ApiError::Store(kimberlite::Error::UnknownCheckpoint {
            name: "billing".into(),
            size: 9,
            reason: "not UTF-8".into(),
        });
        assert_eq!(
            error.status_and_kind(),
            (StatusCode::INTERNAL_SERVER_ERROR, "corrupt")
        );
        assert_eq!(
            error.stream_and_offsets(),
            (Some("billing".into()), None, None)
        );
    }
}
