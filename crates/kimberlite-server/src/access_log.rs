//! The access log: who did what to which events, recorded in the server's own stream
//! `_access`, itself hash-chained like every stream.
//!
//! A middleware on every route ([`record`]) identifies the key from the `Authorization`
//! header, runs the handler, and appends one JSON record per request with a known key:
//!
//! ```json
//! {"time":"YYYY-MM-DDTHH:MM:SS.mmmZ","key":"auditor","op":"GET /v1/streams/{stream}/events",
//!  "stream":"ehr","from":0,"to":20,"status":200}
//! ```
//!
//! `stream` is the path's, else the one the handler named ([`NamedStream`]: a stream created
//! from a JSON body); `from`/`to` the offsets the handler touched ([`Touched`]), `kind` the
//! error kind of a refused or failed request. Requests without a valid key name no principal:
//! they are counted in the metrics, not recorded. The request is answered only once its
//! record is durable; the writer (`access_writer.rs`) batches the records of concurrent
//! requests into one append, and an append's record is written with its events
//! ([`RecordClaim`]), in the same sync. A request that has started is finished in a task of
//! its own if its connection lets go of it ([`Finished`]), so a client that goes away, or a
//! request timeout, cannot stop it from being recorded.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

use crate::access_writer::{RecordClaim, Recorded, Slot};
use crate::client_cert::ClientCertName;
use crate::error::{ApiError, ErrorKind};
use crate::finish::Finished;
use crate::metrics::RouteLabel;
use crate::principal::Principal;
use crate::state::AppState;
use crate::touched::{NamedStream, Touched};

/// One request as the access log records it.
#[derive(Debug, Serialize)]
struct AccessRecord<'a> {
    /// When the request arrived, RFC 3339 UTC.
    time: &'a str,
    /// The key's id (never its token).
    key: &'a str,
    /// Method and route, as matched (`POST /v1/streams/{stream}/events`).
    op: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<u64>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
}

/// What a request's record says whatever its answer, made before its handler runs.
pub(crate) struct Fields {
    pub(crate) time: String,
    pub(crate) key_id: String,
    pub(crate) op: Cow<'static, str>,
    pub(crate) stream: Option<String>,
}

impl Fields {
    /// The claim an append takes to have this record written with its events, in one sync.
    pub(crate) fn claim(self: &Arc<Self>, slot: Slot) -> RecordClaim {
        let fields = Arc::clone(self);
        RecordClaim::new(
            slot,
            Box::new(move |appended: &kimberlite::AppendResult| {
                let record = AccessRecord {
                    time: &fields.time,
                    key: &fields.key_id,
                    op: &fields.op,
                    stream: fields.stream.as_deref(),
                    from: Some(appended.first_offset.as_u64()),
                    to: Some(appended.next_offset.as_u64()),
                    status: axum::http::StatusCode::OK.as_u16(),
                    kind: None,
                };
                serde_json::to_vec(&record).map_err(|error| format!("an access record: {error}"))
            }),
        )
    }
}

/// The principal the middleware found for a request, in its extensions for the handler.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) Principal);

/// Routes whose requests need a key: everything under `/v1` but the API description.
fn needs_key(route: &str) -> bool {
    route.starts_with("/v1/") && route != "/v1/openapi.json"
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Middleware on every route: see the module docs.
pub(crate) async fn record(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let label = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| RouteLabel::of(path.as_str()));
    let Some(label) = label else {
        return next.run(request).await;
    };
    if !needs_key(&label.0) {
        return with_route(next.run(request).await, label);
    }
    // Who the handler will take the caller for: the bearer token, else a verified client
    // certificate's name (as `auth.rs` decides).
    let principal = match bearer_token(request.headers()) {
        Some(token) => state.keys().authenticate(token).ok(),
        None => request
            .extensions()
            .get::<ClientCertName>()
            .and_then(|ClientCertName(name)| state.keys().authenticate_name(name).ok()),
    };
    // The handler's `Principal` extractor takes this one rather than looking the key up
    // again, where it would reach the same answer: a bearer token, or no Authorization
    // header and a client certificate (`auth.rs`).
    let same_as_extractor = !request
        .headers()
        .contains_key(axum::http::header::AUTHORIZATION)
        || bearer_token(request.headers()).is_some();
    let key_id = principal.map(|principal| {
        let key_id = principal.key_id.clone();
        if same_as_extractor {
            request.extensions_mut().insert(Authenticated(principal));
        }
        key_id
    });
    let Some(key_id) = key_id else {
        // Counted when refused, so that routes open without a key (public tiles) are not.
        let response = next.run(request).await;
        if response.status() == axum::http::StatusCode::UNAUTHORIZED {
            state.metrics().count_unauthenticated();
        }
        return with_route(response, label);
    };
    // Fail-closed: no room in the log (or a failed log) means the handler does not run.
    let slot = match state.access_log().reserve().await {
        Ok(slot) => slot,
        Err(error) => return with_route(error.into_response(), label),
    };
    let time = crate::utc_time::rfc3339_millis(std::time::SystemTime::now());
    let op = Cow::Owned(format!("{} {}", request.method(), label.0));
    let (mut parts, body) = request.into_parts();
    let stream = RawPathParams::from_request_parts(&mut parts, &state)
        .await
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(name, _)| *name == "stream")
                .map(|(_, value)| value.to_owned())
        });
    let mut request = Request::from_parts(parts, body);
    // What both ways of recording say, shared rather than copied for each.
    let fields = Arc::new(Fields {
        time,
        key_id,
        op,
        stream,
    });
    // An append takes the claim to have this record written with its events, in one sync.
    let claim = fields.claim(slot);
    request.extensions_mut().insert(claim.clone());
    let running = state.request_task();
    let work = async move {
        let _running = running;
        let response = next.run(request).await;
        answer_recorded(&state, &fields, &claim, response).await
    };
    let response = Finished::new(work).await.unwrap_or_else(|panic| {
        ApiError::Internal(format!("a request task failed: {panic}")).into_response()
    });
    with_route(response, label)
}

/// `response` once the request's record is durable: written with its append already
/// ([`Recorded`]), else now, through the claim's slot or a new one; an error answer when it
/// cannot be recorded. The access log's middleware and the lean append route both end so.
pub(crate) async fn answer_recorded(
    state: &AppState,
    fields: &Fields,
    claim: &RecordClaim,
    response: Response,
) -> Response {
    if response.extensions().get::<Recorded>().is_some() {
        return response;
    }
    let slot = match claim.take() {
        Some((slot, _)) => slot,
        // The append handler used the reserved slot and its record was not written with
        // its events: another slot for the record of its answer.
        None => match state.access_log().reserve().await {
            Ok(slot) => slot,
            Err(error) => return error.into_response(),
        },
    };
    let touched = response.extensions().get::<Touched>().copied();
    let named = response.extensions().get::<NamedStream>();
    let stream = fields
        .stream
        .as_deref()
        .or_else(|| named.map(|NamedStream(name)| name.as_str()));
    let record = AccessRecord {
        time: &fields.time,
        key: &fields.key_id,
        op: &fields.op,
        stream,
        from: touched.map(|touched| touched.from),
        to: touched.map(|touched| touched.to),
        status: response.status().as_u16(),
        kind: ErrorKind::of(&response).map(|ErrorKind(kind)| kind),
    };
    let record = match serde_json::to_vec(&record) {
        Ok(record) => record,
        Err(error) => {
            return ApiError::Internal(format!("an access record: {error}")).into_response()
        }
    };
    match slot.send(record).await {
        Ok(Ok(())) => response,
        Ok(Err(error)) => ApiError::Unavailable(format!(
            "the access log could not record this request, so it is not acknowledged \
             (it may have taken effect): {error}"
        ))
        .into_response(),
        Err(_) => {
            ApiError::Unavailable("the access log stopped before recording this request".into())
                .into_response()
        }
    }
}

pub(crate) fn with_route(mut response: Response, route: RouteLabel) -> Response {
    response.extensions_mut().insert(route);
    response
}
