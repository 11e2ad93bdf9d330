//! `POST /v1/streams/{stream}/events`: append a batch, answered once it is durable.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::{Extension, Json};
use kimberlite::{ExpectedOffset, MAX_EVENT_BYTES};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access_writer::{RecordClaim, Recorded};
use crate::api::body::{decode_batch, BatchEncoding};
use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::state::AppState;
use crate::touched::Touched;

/// Query of an append.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppendQuery {
    /// The stream's next offset the batch must start at; 409 (with the real next offset)
    /// when it does not, and nothing is written.
    expected_offset: Option<u64>,
    /// Seal every event of the batch for this data subject (encrypted with its own key,
    /// which `POST /v1/erasures` destroys). Needs the server's master key.
    subject: Option<String>,
}

/// What an append did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AppendResponse {
    /// Offset of the batch's first event.
    pub(crate) first_offset: u64,
    /// The stream's next offset after the batch.
    pub(crate) next_offset: u64,
    /// Chain hash (hex) of the batch's last event: it commits to the whole stream so far.
    pub(crate) head: String,
}

/// Append a batch of events (append). The answer comes once the batch is durable.
#[utoipa::path(post, path = "/v1/streams/{stream}/events",
    params(("stream" = String, Path), AppendQuery),
    request_body(description = "a JSON array, NDJSON, or length-prefixed binary events",
        content((Vec<String> = "application/json"), (String = "application/x-ndjson"),
            (Vec<u8> = "application/octet-stream"))),
    responses((status = 200, body = AppendResponse),
        (status = 409, description = "expected offset conflict; `next_offset` in the error body"),
        (status = 413, description = "body, batch or event over a limit")))]
pub(crate) async fn append(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(query): Query<AppendQuery>,
    AppendHeaders {
        content_type,
        request_id: headers,
    }: AppendHeaders,
    claim: Option<Extension<RecordClaim>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<AppendAnswer, ApiError> {
    check_stream_name(&name)?;
    principal.require(Permission::Append, &name)?;
    if name.starts_with('_') {
        // The server's own streams (the access log) are written by the server alone, so no
        // key, however wide its grant, can forge or pad them.
        return Err(ApiError::Forbidden {
            operation: "append",
            stream: name,
        });
    }
    let content_type = content_type.as_ref().and_then(|value| value.to_str().ok());
    let encoding = BatchEncoding::from_content_type(content_type)?;
    let events = decode_events(&state, encoding, body)?;
    let expected = match query.expected_offset {
        Some(offset) => ExpectedOffset::Exact(offset.into()),
        None => ExpectedOffset::Any,
    };
    if let Some(cluster) = state.cluster() {
        let subject = query.subject.as_deref();
        return cluster_append(&state, &cluster, &headers, &name, subject, events, expected).await;
    }
    let sealing = match query.subject {
        Some(subject) => Some((state.subjects()?, subject)),
        None => None,
    };
    let started = std::time::Instant::now();
    let (appended, recorded) = match sealing {
        // Sealed appends go through the subjects' key store (it seals, then appends); the
        // access log's middleware records them after, in a sync of their own.
        Some((keys, subject)) => {
            let appended = state
                .with_store(move |store| {
                    let id = store
                        .stream(&name)
                        .ok_or(kimberlite::Error::StreamNotFound { name })?;
                    Ok(keys.append_bytes(id, &subject, events, expected)?)
                })
                .await?;
            (appended, false)
        }
        // Through the access log's writer, with this request's record when the log keeps one:
        // no blocking thread per append, and one sync for the events and their record.
        None => {
            let claim = claim.map(|Extension(claim)| claim);
            state
                .access_log()
                .append(claim, name, events, expected)
                .await?
        }
    };
    Ok(answer_appended(&state, started, &appended, recorded))
}

/// What an append answers: the range it touched (for its access record, `Touched`), whether
/// that record was written with it, the answer's own headers, and its body.
pub(crate) type AppendAnswer = (
    Extension<Touched>,
    Option<Extension<Recorded>>,
    HeaderMap,
    Json<AppendResponse>,
);

/// A single server's answer to an append made: the range it touched (for its access record),
/// whether that record was written with it, its offsets and head; the append's time and size
/// observed in the metrics.
pub(crate) fn answer_appended(
    state: &AppState,
    started: std::time::Instant,
    appended: &kimberlite::AppendResult,
    recorded: bool,
) -> AppendAnswer {
    let touched = Touched {
        from: appended.first_offset.as_u64(),
        to: appended.next_offset.as_u64(),
    };
    state
        .metrics()
        .observe_append(started.elapsed(), touched.to.saturating_sub(touched.from));
    (
        Extension(touched),
        recorded.then_some(Extension(Recorded)),
        HeaderMap::new(),
        Json(AppendResponse {
            first_offset: touched.from,
            next_offset: touched.to,
            head: appended.head.to_string(),
        }),
    )
}

/// An append in cluster mode: through the leader's Raft log; the access log's middleware
/// (or the lean route, its way) records it after (in the node's own access store). `headers`
/// need hold only the request id ([`request_id_header`]).
pub(crate) async fn cluster_append(
    state: &AppState,
    cluster: &crate::cluster::Cluster,
    headers: &HeaderMap,
    name: &str,
    subject: Option<&str>,
    events: Vec<Bytes>,
    expected: ExpectedOffset,
) -> Result<AppendAnswer, ApiError> {
    if subject.is_some() {
        return Err(ApiError::NotInCluster(
            "sealed appends (?subject=) are not served in cluster mode yet: each replica \
             would seal with keys of its own"
                .into(),
        ));
    }
    let request = crate::cluster::request_id(headers)?;
    let started = std::time::Instant::now();
    let appended = crate::cluster::append(cluster, request, name, events, expected).await?;
    let touched = Touched {
        from: appended.first_offset,
        to: appended.head.next_offset,
    };
    state
        .metrics()
        .observe_append(started.elapsed(), touched.to.saturating_sub(touched.from));
    let mut answer_headers = HeaderMap::new();
    if let Ok(value) = crate::cluster::log_position(Some(appended.log_id)).parse() {
        answer_headers.insert(crate::cluster::LOG_POSITION_HEADER, value);
    }
    Ok((
        Extension(touched),
        None,
        answer_headers,
        Json(AppendResponse {
            first_offset: touched.from,
            next_offset: touched.to,
            head: appended.head.hash.map(hex::encode).unwrap_or_default(),
        }),
    ))
}

/// The events of an append's body, under the server's limits (events per request, bytes per
/// event); a body that could not be read is refused as [`body_error`] says.
pub(crate) fn decode_events(
    state: &AppState,
    encoding: BatchEncoding,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<Bytes>, ApiError> {
    let body = body.map_err(body_error)?;
    let max_events = state.limits().max_events_per_request;
    decode_batch(encoding, &body, max_events, MAX_EVENT_BYTES)
}

/// A body that could not be read: over the size limit, or cut by the client.
pub(crate) fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!(
            "the request body is over the size limit: {rejection}"
        ))
    } else {
        ApiError::BadRequest(format!("the request body could not be read: {rejection}"))
    }
}

/// The two headers an append reads, taken alone (the `HeaderMap` extractor copies every
/// header): `Content-Type`, and the request id of a cluster append
/// (`cluster::REQUEST_ID_HEADER`), kept as a map that is empty, and allocates nothing, when
/// the request has none.
pub(crate) struct AppendHeaders {
    content_type: Option<HeaderValue>,
    request_id: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for AppendHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            content_type: parts.headers.get(axum::http::header::CONTENT_TYPE).cloned(),
            request_id: request_id_header(&parts.headers),
        })
    }
}

/// The request id header of `headers` alone (`cluster::REQUEST_ID_HEADER`), as a map that is
/// empty, and allocates nothing, when there is none.
pub(crate) fn request_id_header(headers: &HeaderMap) -> HeaderMap {
    let mut request_id = HeaderMap::new();
    if let Some(value) = headers.get(crate::cluster::REQUEST_ID_HEADER) {
        request_id.insert(crate::cluster::REQUEST_ID_HEADER, value.clone());
    }
    request_id
}
