//! Following streams end to end over loopback: the SSE tail (events appended after it
//! started, resume with Last-Event-ID, the end when the client goes) and long-poll reads
//! (early answer when an event arrives, an empty page at the timeout, the cap).

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, AUDITOR, WRITER};
use kimberlite_server::Limits;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Reads SSE events (`id`, `data`) from `response` until `count` have come, failing after
/// `within`. Comments (keep-alives) are skipped.
async fn sse_events(
    response: &mut reqwest::Response,
    count: usize,
    within: Duration,
) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + within;
    while events.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .expect("the tail sent the events in time")
            .expect("a chunk")
            .expect("the tail is still open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(value.trim()).unwrap());
                }
            }
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id, data));
            }
        }
    }
    events
}

fn quick_limits() -> Limits {
    Limits {
        tail_keep_alive: Duration::from_millis(100),
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_tail_sees_events_appended_after_it_started_and_ends_when_the_client_goes() {
    let server = TestServer::start_with(quick_limits()).await;
    server.create_stream("app-ehr").await;
    server.append("app-ehr", &json!(["before the tail"])).await;
    let mut tail = server.get("/v1/streams/app-ehr/tail", AUDITOR).await;
    assert_eq!(tail.status(), StatusCode::OK);
    assert_eq!(
        tail.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    assert_eq!(server.state.open_tails(), 1);
    server.append("app-ehr", &json!(["first", "second"])).await;
    server.append("app-ehr", &json!(["third"])).await;
    let events = sse_events(&mut tail, 3, Duration::from_secs(20)).await;
    assert_eq!(
        events,
        vec![
            ("1".into(), json!({"offset": 1, "payload": "first"})),
            ("2".into(), json!({"offset": 2, "payload": "second"})),
            ("3".into(), json!({"offset": 3, "payload": "third"})),
        ],
        "only the events appended after the tail started, in order"
    );
    drop(tail);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.state.open_tails() > 0 {
        assert!(
            Instant::now() < deadline,
            "the tail still runs after its client went"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_tail_starts_at_from_or_resumes_after_last_event_id() {
    let server = TestServer::start_with(quick_limits()).await;
    server.create_stream("app-x").await;
    server.append("app-x", &json!(["a", "b", "c", "d"])).await;
    let mut from = server
        .get("/v1/streams/app-x/tail?from=1&encoding=base64", AUDITOR)
        .await;
    let events = sse_events(&mut from, 3, Duration::from_secs(20)).await;
    assert_eq!(
        events[0],
        ("1".into(), json!({"offset": 1, "payload_base64": "Yg=="}))
    );
    assert_eq!(events[2].0, "3");
    drop(from);
    let mut resumed = server
        .client
        .get(server.url("/v1/streams/app-x/tail?from=0"))
        .bearer_auth(AUDITOR)
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    let events = sse_events(&mut resumed, 1, Duration::from_secs(20)).await;
    assert_eq!(
        events[0],
        ("3".into(), json!({"offset": 3, "payload": "d"}))
    );
    drop(resumed);
    server.stop().await;
}

#[tokio::test]
async fn stopping_the_server_ends_open_tails() {
    let server = TestServer::start().await;
    server.create_stream("app-s").await;
    let tail = server.get("/v1/streams/app-s/tail", AUDITOR).await;
    assert_eq!(tail.status(), StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("graceful shutdown is not held by an open tail");
    drop(tail);
}

#[tokio::test]
async fn bad_tail_requests_are_refused_before_anything_is_sent() {
    let server = TestServer::start().await;
    server.create_stream("billing").await;
    for (token, path, header, status) in [
        (
            AUDITOR,
            "/v1/streams/billing/tail?from=abc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            AUDITOR,
            "/v1/streams/billing/tail?form=1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            AUDITOR,
            "/v1/streams/billing/tail",
            Some("not-an-offset"),
            StatusCode::BAD_REQUEST,
        ),
        (
            AUDITOR,
            "/v1/streams/missing/tail",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            WRITER,
            "/v1/streams/billing/tail",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            WRITER,
            "/v1/streams/missing/tail",
            None,
            StatusCode::FORBIDDEN,
        ),
    ] {
        let mut request = server.client.get(server.url(path)).bearer_auth(token);
        if let Some(value) = header {
            request = request.header("Last-Event-ID", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{path} {header:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(server.state.open_tails(), 0);
    server.stop().await;
}

async fn read(server: &TestServer, query: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let response = server
        .get(&format!("/v1/streams/app-poll/events?{query}"), AUDITOR)
        .await;
    let status = response.status();
    (status, response.json().await.unwrap(), started.elapsed())
}

#[tokio::test]
async fn a_long_poll_answers_when_an_event_arrives_and_with_an_empty_page_at_its_timeout() {
    let limits = Limits {
        max_read_wait: Duration::from_secs(30),
        request_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let server = std::sync::Arc::new(TestServer::start_with(limits).await);
    server.create_stream("app-poll").await;

    let (status, page, elapsed) = read(&server, "from=0&wait_ms=300").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page,
        json!({"events": [], "next_offset": 0, "end_offset": 0})
    );
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");

    let poller = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move { read(&server, "from=0&wait_ms=25000").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.append("app-poll", &json!(["arrived"])).await;
    let (status, page, elapsed) = poller.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["events"], json!([{"offset": 0, "payload": "arrived"}]));
    assert!(
        elapsed < Duration::from_secs(20),
        "{elapsed:?}: not woken early"
    );

    // An event already there: no wait at all.
    let (_, page, elapsed) = read(&server, "from=0&wait_ms=25000").await;
    assert_eq!(page["next_offset"], 1);
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    std::sync::Arc::try_unwrap(server)
        .ok()
        .expect("one owner")
        .stop()
        .await;
}

#[tokio::test]
async fn a_long_poll_is_capped_by_the_server_limit_and_bad_waits_are_400() {
    let limits = Limits {
        max_read_wait: Duration::from_millis(200),
        ..Limits::default()
    };
    let server = TestServer::start_with(limits).await;
    server.create_stream("app-poll").await;
    let (status, page, elapsed) = read(&server, "from=0&wait_ms=600000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["events"], json!([]));
    assert!(
        elapsed < Duration::from_secs(10),
        "{elapsed:?}: the cap was not applied"
    );
    for query in [
        "wait_ms=abc",
        "wait_ms=-1",
        "from=-1",
        "from=1e3",
        "limit=x",
    ] {
        let (status, body, _) = read(&server, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["kind"], "bad_request", "{query}");
    }
    server.stop().await;
}
