//! Liveness (the process answers) and readiness (it can take writes).

/// `GET /healthz`: 200 while the process serves requests.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 while the store is open and writable and the access log records; 503
/// during shutdown, after the store's fail-stop or after the access log failed.
pub(crate) async fn readyz(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
) -> (axum::http::StatusCode, &'static str) {
    if state.is_ready() {
        (axum::http::StatusCode::OK, "ready\n")
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
