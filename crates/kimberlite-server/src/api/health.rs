//! Liveness: the process answers.

/// `GET /healthz`: 200 while the process serves requests.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}
