//! The metrics' middleware and route: every request timed and its bytes counted on the way
//! through; `GET /metrics` answers the exposition (`metrics.rs` keeps the metrics).

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

use crate::error::ErrorKind;
use crate::metrics::RouteLabel;
use crate::state::AppState;

/// `GET /metrics`: the Prometheus text exposition.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics().encode(state.store().syncs_completed()) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Around every request but the Raft's (`router.rs`, [`timed`](crate::router::timed)): times
/// each request to its response's headers, counts the bytes of both bodies as they flow,
/// counts error answers by kind, and logs the request at debug level.
pub(crate) async fn tracked<F, A>(state: &AppState, request: Request, serve: F) -> Response
where
    F: FnOnce(Request) -> A,
    A: std::future::Future<Output = Response>,
{
    let started = Instant::now();
    let method = method_label(request.method());
    let bytes_in = state.metrics().bytes_in();
    let request = request.map(|body| Body::new(Counted::new(body, bytes_in)));
    let response = serve(request).await;
    let metrics = state.metrics();
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or_else(|| Arc::from("unmatched"), |route| Arc::clone(&route.0));
    let status = response.status().as_u16();
    let took = started.elapsed();
    tracing::debug!(%method, %route, status, ?took, "request answered");
    metrics.observe_request(method, route, status, took.as_secs_f64());
    if let Some(ErrorKind(kind)) = ErrorKind::of(&response) {
        metrics.count_error(kind);
    }
    let bytes_out = metrics.bytes_out();
    response.map(|body| Body::new(Counted::new(body, bytes_out)))
}

/// A method as a metric label: the standard ones without an allocation.
fn method_label(method: &Method) -> Cow<'static, str> {
    const STANDARD: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    STANDARD
        .iter()
        .find(|(standard, _)| standard == method)
        .map_or_else(
            || Cow::Owned(method.as_str().to_owned()),
            |(_, name)| Cow::Borrowed(*name),
        )
}

/// A body that counts its data bytes as they flow and keeps the inner body's size hint, so
/// a response of known length keeps its `Content-Length` (a mapped body would be chunked).
struct Counted {
    inner: Body,
    counter: Counter,
}

impl Counted {
    fn new(inner: Body, counter: Counter) -> Self {
        Self { inner, counter }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.counter.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
