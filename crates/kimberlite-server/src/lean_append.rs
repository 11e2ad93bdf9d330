//! The lean append route: `POST /v1/streams/{stream}/events` served by the connection
//! itself, before the router, when nothing but the body can make it fail, on a single
//! server or a cluster's leader.
//!
//! The request is taken only when this node may write (a single server, or a cluster's
//! leader: a follower's router sends the client to the leader), its bearer token names an
//! active key allowed to append to the stream, the name is valid and not one of the server's
//! own, the `Content-Type` is an append encoding and the query is empty or a plain
//! `expected_offset`; anything else goes through the router, which answers (401, 403, 400,
//! 415...) and records as always. A taken request runs the access log's middleware's steps
//! (a slot reserved, then [`answer_recorded`]) and the append handler's (`api/append.rs`:
//! the body read under the router's limit, decoded, appended through the access log's
//! writer with its record, or through the Raft log in cluster mode, with the cluster gate's
//! `Location`) as one future, in a [`Finished`] so that a client gone does not stop it: the
//! same answers, records and metrics, without the router's matching, the middleware's boxed
//! futures and the extractors' copies (`docs/PERFORMANCE.md`, "Design decisions").

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use kimberlite::ExpectedOffset;
use tower::{Layer, Service};

use crate::access_log::{answer_recorded, bearer_token, with_route, Fields};
use crate::access_writer::RecordClaim;
use crate::api::append::{
    answer_appended, cluster_append, decode_events, request_id_header, AppendAnswer,
};
use crate::api::body::BatchEncoding;
use crate::error::ApiError;
use crate::finish::Finished;
use crate::metrics::RouteLabel;
use crate::names::check_stream_name;
use crate::principal::Permission;
use crate::state::AppState;

/// The route's pattern, as the router names it (metrics label, access record `op`).
const ROUTE: &str = "/v1/streams/{stream}/events";

/// What the lean route needs beside the state, made once per server.
#[derive(Clone)]
pub(crate) struct LeanAppend {
    /// The router's body limit, as its `DefaultBodyLimit` layer puts it in each request's
    /// extensions, so the body is read (and refused) exactly as the router's `Bytes` does.
    body_limit: axum::http::Extensions,
    label: RouteLabel,
}

/// A request the lean route took: the checks that could send it to the router are passed.
pub(crate) struct Taken {
    request: Request,
    name: String,
    key_id: String,
    expected: ExpectedOffset,
    encoding: BatchEncoding,
}

impl LeanAppend {
    /// The lean route of `state`'s server.
    pub(crate) fn new(state: &AppState) -> Self {
        Self {
            body_limit: limit_extensions(state.limits().max_body_bytes),
            label: RouteLabel::of(ROUTE),
        }
    }

    /// `request` as the lean route takes it, or back for the router.
    pub(crate) fn take(&self, state: &AppState, request: Request) -> Result<Taken, Request> {
        let Some(checked) = checked(state, &request) else {
            return Err(request);
        };
        let (name, key_id, expected, encoding) = checked;
        Ok(Taken {
            request,
            name,
            key_id,
            expected,
            encoding,
        })
    }

    /// Serves a request [`Self::take`] took: the access log's middleware and the append
    /// handler, in one future.
    pub(crate) async fn serve(&self, state: &AppState, taken: Taken) -> Response {
        let Taken {
            mut request,
            name,
            key_id,
            expected,
            encoding,
        } = taken;
        // Fail-closed: no room in the log (or a failed log) means the append does not run.
        let slot = match state.access_log().reserve().await {
            Ok(slot) => slot,
            Err(error) => return with_route(error.into_response(), self.label.clone()),
        };
        let fields = Arc::new(Fields {
            time: crate::utc_time::rfc3339_millis(std::time::SystemTime::now()),
            key_id,
            op: Cow::Borrowed(OP),
            stream: Some(name.clone()),
        });
        let claim = fields.claim(slot);
        // As the cluster gate's: a leader's answer may send the client on (leadership lost).
        let path_and_query = state.cluster().map(|_| {
            request
                .uri()
                .path_and_query()
                .map(|path_and_query| path_and_query.as_str().to_owned())
                .unwrap_or_default()
        });
        request.extensions_mut().extend(self.body_limit.clone());
        let (state, running) = (state.clone(), state.request_task());
        let work = async move {
            let _running = running;
            let response = append(&state, request, name, expected, encoding, claim.clone())
                .await
                .into_response();
            answer_recorded(&state, &fields, &claim, response).await
        };
        let mut response = Finished::new(work).await.unwrap_or_else(|panic| {
            ApiError::Internal(format!("a request task failed: {panic}")).into_response()
        });
        if let Some(path_and_query) = path_and_query {
            response = crate::cluster::locate(response, &path_and_query);
        }
        with_route(response, self.label.clone())
    }
}

/// The access record's `op` of the route.
const OP: &str = "POST /v1/streams/{stream}/events";

/// The stream, key id, expected offset and encoding of a request the lean route can take
/// (see the module docs), else `None`.
fn checked(
    state: &AppState,
    request: &Request,
) -> Option<(String, String, ExpectedOffset, BatchEncoding)> {
    if request.method() != Method::POST {
        return None;
    }
    let name = request
        .uri()
        .path()
        .strip_prefix("/v1/streams/")?
        .strip_suffix("/events")?;
    // Percent-encoded names go through the router, which decodes them.
    if name.is_empty() || name.contains(['/', '%']) || name.starts_with('_') {
        return None;
    }
    check_stream_name(name).ok()?;
    if state.cluster().is_some_and(|cluster| !cluster.is_leader()) {
        return None;
    }
    let expected = match request.uri().query() {
        None => ExpectedOffset::Any,
        Some(query) => {
            let offset = query.strip_prefix("expected_offset=")?;
            if offset.is_empty() || !offset.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            ExpectedOffset::Exact(offset.parse::<u64>().ok()?.into())
        }
    };
    let content_type = request.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let encoding = BatchEncoding::from_content_type(Some(content_type)).ok()?;
    let principal = state
        .keys()
        .authenticate(bearer_token(request.headers())?)
        .ok()?;
    principal.require(Permission::Append, name).ok()?;
    Some((name.to_owned(), principal.key_id, expected, encoding))
}

/// The append handler's steps once its checks passed (`api/append.rs`): the body, its
/// events, the append through the access log's writer with the request's record, or in
/// cluster mode the handler's own [`cluster_append`] (its record written after, by
/// [`answer_recorded`]).
async fn append(
    state: &AppState,
    request: Request,
    name: String,
    expected: ExpectedOffset,
    encoding: BatchEncoding,
    claim: RecordClaim,
) -> Result<AppendAnswer, ApiError> {
    let cluster = state.cluster();
    // The request id is a header: taken before the body consumes the request.
    let request_id = match cluster {
        Some(_) => request_id_header(request.headers()),
        None => HeaderMap::new(),
    };
    let body = Bytes::from_request(request, &()).await;
    let events = decode_events(state, encoding, body)?;
    if let Some(cluster) = cluster {
        return cluster_append(state, &cluster, &request_id, &name, None, events, expected).await;
    }
    let started = std::time::Instant::now();
    let (appended, recorded) = state
        .access_log()
        .append(Some(claim), name, events, expected)
        .await?;
    Ok(answer_appended(state, started, &appended, recorded))
}

/// The extensions `DefaultBodyLimit::max(max_body_bytes)` gives a request (its kind of
/// limit is private to axum): taken from one request passed through the layer.
fn limit_extensions(max_body_bytes: usize) -> axum::http::Extensions {
    let mut service = DefaultBodyLimit::max(max_body_bytes).layer(tower::service_fn(
        |request: Request| async move {
            Ok::<_, std::convert::Infallible>(request.into_parts().0.extensions)
        },
    ));
    let called = service.call(Request::new(axum::body::Body::empty()));
    // The service answers without waiting for anything: one poll with a no-op waker.
    let mut called = std::pin::pin!(called);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match called.as_mut().poll(&mut context) {
        std::task::Poll::Ready(Ok(extensions)) => extensions,
        _ => axum::http::Extensions::new(),
    }
}

#[cfg(test)]
#[path = "lean_append_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "lean_append_cluster_tests.rs"]
mod cluster_tests;
