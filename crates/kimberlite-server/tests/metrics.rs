//! `/metrics` and `/readyz`: the counters move with the requests that move them, and
//! readiness falls during shutdown, after the store's fail-stop and when the access log
//! cannot record (which also refuses every request with a key: fail-closed).

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{test_keys, TestServer, AUDITOR, WRITER};
use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_server::{AppState, Limits};
use reqwest::StatusCode;
use serde_json::json;
use tower::ServiceExt as _;

/// The value of the sample `name` (with its labels, exactly as exposed), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_appends_bytes_syncs_and_errors() {
    let server = TestServer::start().await;
    server.create_stream("app-m").await;
    for _ in 0..2 {
        let appended = server
            .post(
                "/v1/streams/app-m/events",
                WRITER,
                &json!(["one", "two", "three"]),
            )
            .await;
        assert_eq!(appended.status(), StatusCode::OK);
    }
    let refused = server.get("/v1/streams/app-m/events", WRITER).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let anonymous = server
        .client
        .get(server.url("/v1/streams/app-m/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    let appends = r#"kimberlite_http_request_duration_seconds_count{method="POST",route="/v1/streams/{stream}/events",status="200"}"#;
    assert_eq!(sample(&text, appends), Some(2.0), "{text}");
    let forbidden = r#"kimberlite_http_request_duration_seconds_count{method="GET",route="/v1/streams/{stream}/events",status="403"}"#;
    assert_eq!(sample(&text, forbidden), Some(1.0), "{text}");
    assert_eq!(sample(&text, "kimberlite_events_appended_total"), Some(6.0));
    assert_eq!(
        sample(&text, "kimberlite_append_duration_seconds_count"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"kimberlite_errors_total{kind="forbidden"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"kimberlite_errors_total{kind="unauthorized"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "kimberlite_unauthenticated_requests_total"),
        Some(1.0)
    );
    // Two appends and their access records, the creation and its record: at least one sync
    // each for the appends; group commit may share syncs between a request and a record.
    assert!(
        sample(&text, "kimberlite_store_syncs_total").unwrap() >= 2.0,
        "{text}"
    );
    let body_in = sample(&text, "kimberlite_http_request_body_bytes_total").unwrap();
    // Two bodies of `["one","two","three"]` plus the creation's `{"name":"app-m"}`.
    assert_eq!(body_in, (2 * 21 + 16) as f64, "{text}");
    assert!(sample(&text, "kimberlite_http_response_body_bytes_total").unwrap() > 0.0);
    assert!(text.trim_end().ends_with("# EOF"));
    server.stop().await;
}

async fn get(app: &axum::Router, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn state_over(store: Kimberlite) -> AppState {
    AppState::new(store, test_keys(), Limits::default())
}

#[tokio::test]
async fn ready_while_writable_and_not_once_shutdown_begins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Kimberlite::open_with(
        dir.path(),
        Config::default().durability(Durability::GroupCommit),
    )
    .unwrap();
    let state = state_over(store);
    let app = kimberlite_server::app(state.clone());
    assert_eq!(get(&app, "/readyz", None).await.0, StatusCode::OK);
    state.begin_shutdown();
    let (status, body) = get(&app, "/readyz", None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    );
    // Liveness is another question: the process still answers.
    assert_eq!(get(&app, "/healthz", None).await.0, StatusCode::OK);
}

/// A store that cannot take writes (here opened read-only, as after a fail-stop): not ready,
/// and since the access log cannot record, no request with a key runs at all (503), while
/// requests without a valid key are still refused as such (401).
#[tokio::test]
async fn an_access_log_that_cannot_record_refuses_every_keyed_request() {
    let dir = tempfile::tempdir().unwrap();
    for with_log in [false, true] {
        let store = Kimberlite::open(dir.path()).unwrap();
        if with_log {
            // The second time the log's stream exists, so it fails on its first append.
            drop(state_over(store));
        } else {
            drop(store);
        }
        let store = Kimberlite::open_read_only(dir.path(), Config::default()).unwrap();
        let app = kimberlite_server::app(state_over(store));
        assert_eq!(
            get(&app, "/readyz", None).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        for _ in 0..2 {
            let (status, body) = get(&app, "/v1/streams/_access/events", Some(AUDITOR)).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(body.contains("\"unavailable\""), "{body}");
        }
        let (status, _) = get(&app, "/v1/streams", Some("not-a-key")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
