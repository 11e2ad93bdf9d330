//! The router: every route, and the limits and layers around them.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get};
use axum::Router;

use crate::api::{
    append, checkpoint, health, keys, proofs, read, receipt, retain, streams, tail, tiles, verify,
    witnessed,
};
use crate::error::ApiError;
use crate::state::AppState;
use axum::routing::post;

/// The router with its limits, request metrics and timeout: what [`crate::app`] serves. The
/// same as a connection serves, [`timed`] applied by a layer instead of by the connection.
pub(crate) fn router(state: AppState) -> Router {
    served_router(state.clone()).layer(axum::middleware::from_fn_with_state(state, timed_layer))
}

/// [`timed`] as a layer.
async fn timed_layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    timed(&state, request, |request| next.run(request)).await
}

/// The router a connection serves: as [`router`], but the connection itself times, counts
/// and bounds each request to a route not the Raft's ([`timed`]), the same way, without a
/// layer's boxed future and route clone per request (docs/PERFORMANCE.md, "Design
/// decisions").
pub(crate) fn served_router(state: AppState) -> Router {
    bounded(&state)
        .merge(crate::cluster::raft_routes())
        .with_state(state)
}

/// What the connection does around [`served_router`] for a request to `path`: the request
/// metrics and timeout of [`router`]'s layers, for every route but the Raft's.
pub(crate) async fn timed<F, A>(state: &AppState, request: Request, serve: F) -> Response
where
    F: FnOnce(Request) -> A,
    A: std::future::Future<Output = Response>,
{
    if crate::cluster::is_raft_path(request.uri().path()) {
        return serve(request).await;
    }
    let timeout = state.limits().request_timeout;
    crate::metrics_layer::tracked(state, request, move |request| async move {
        let sleep = tokio::time::sleep(timeout);
        // The timer first, as `TimeoutLayer` polls it.
        tokio::select! {
            biased;
            () = sleep => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = axum::http::StatusCode::REQUEST_TIMEOUT;
                response
            }
            response = serve(request) => response,
        }
    })
    .await
}

/// Every route but the Raft's, with the access log, the cluster gate and the body limit.
fn bounded(state: &AppState) -> Router<AppState> {
    let limits = state.limits().clone();
    let recorded = routes()
        .merge(crate::cluster::membership_routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access_log::record,
        ));
    // Outside the access log: a request sent to the leader is recorded there, not here. A
    // single server (its cluster is fixed before the router is built) has no gate to pass: a
    // layer costs every request a boxed future (docs/PERFORMANCE.md, "Design decisions").
    let gated = if state.cluster().is_some() {
        recorded.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cluster::gate,
        ))
    } else {
        recorded
    };
    gated.layer(DefaultBodyLimit::max(limits.max_body_bytes))
}

/// Every route of the service.
fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::metrics_layer::metrics))
        .route("/v1/streams", get(streams::list).post(streams::create))
        .route("/v1/streams/{stream}", get(streams::show))
        .route(
            "/v1/streams/{stream}/events",
            get(read::read).post(append::append),
        )
        .route(
            "/v1/streams/{stream}/tlog/checkpoint",
            get(tiles::checkpoint),
        )
        .route("/v1/streams/{stream}/tlog/tile/{*path}", get(tiles::tile))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", delete(keys::revoke))
        .route("/v1/erasures", post(crate::api::erase::erase))
        .route("/v1/streams/{stream}/tail", get(tail::tail))
        .route("/v1/streams/{stream}/verify", get(verify::verify))
        .route(
            "/v1/streams/{stream}/proofs/inclusion",
            get(proofs::inclusion),
        )
        .route(
            "/v1/streams/{stream}/proofs/consistency",
            get(proofs::consistency),
        )
        .route(
            "/v1/streams/{stream}/checkpoint",
            get(checkpoint::checkpoint),
        )
        .route(
            "/v1/streams/{stream}/retain",
            axum::routing::post(retain::retain),
        )
        .route("/v1/streams/{stream}/receipt", get(receipt::receipt))
        .route(
            "/v1/streams/{stream}/checkpoints/witnessed",
            get(witnessed::witnessed),
        )
        .route("/v1/openapi.json", get(crate::openapi::document))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; the API is described at /v1/openapi.json".into())
}
