//! The HTTP face of a witness: `POST /add-checkpoint` (`c2sp.org/tlog-witness`), with bounds
//! on the body, on the requests in flight and on the time per request; the store work runs
//! off the async threads. A request that times out may still have been cosigned and
//! recorded: the log's next request gets 409 with that size, as the spec intends.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;
use tower::limit::ConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::witness::Witness;

/// Largest request body accepted, in bytes: a checkpoint with 63 proof lines and a hundred
/// signatures is well under it.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Most requests handled at once; more wait for a slot. Requests are decided one at a time
/// anyway (one lock), so this only bounds the queue.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 64;
/// Longest a request may take, in milliseconds, before it is answered 408.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// The witness's routes.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(REQUEST_TIMEOUT_MS),
        ))
        .layer(ConcurrencyLimitLayer::new(REQUESTS_IN_FLIGHT_MAX))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let answer = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await;
    match answer {
        Ok(answer) => (
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, answer.content_type)],
            answer.body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Serves the witness on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(witness))
        .with_graceful_shutdown(shutdown)
        .await
}
