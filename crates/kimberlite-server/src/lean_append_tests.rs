//! The lean append route against the router: the same request to two servers holding the
//! same events, one through each, must get the same answer and leave the same access record.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::StatusCode;
use kimberlite::{Config, Durability, Kimberlite, Offset};
use serde_json::Value;
use tower::ServiceExt as _;

use super::LeanAppend;
use crate::config::Limits;
use crate::keys::KeyRing;
use crate::principal::{Permission, Principal};
use crate::state::AppState;
use crate::ACCESS_STREAM;

const WRITER: &str = "writer-token";
const READER: &str = "reader-token";

fn keys() -> KeyRing {
    let principal = |key_id: &str, permission| Principal::new(key_id, &[(permission, "*")]);
    KeyRing::from_tokens(vec![
        (WRITER.into(), principal("kid_writer", Permission::Append)),
        (READER.into(), principal("kid_reader", Permission::Read)),
    ])
}

/// A server's state over a fresh store holding stream `s` with two events.
fn state(dir: &std::path::Path) -> AppState {
    let config = Config::default().durability(Durability::GroupCommit);
    let store = Kimberlite::open_with(dir, config).expect("open");
    let id = store.create_stream("s").expect("s");
    store
        .append(
            id,
            [bytes::Bytes::from("a"), bytes::Bytes::from("b")],
            kimberlite::ExpectedOffset::Any,
        )
        .expect("append");
    let limits = Limits {
        max_body_bytes: 64,
        max_events_per_request: 3,
        ..Limits::default()
    };
    AppState::new(store, keys(), limits)
}

fn request(uri: &str, token: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Request {
    let mut builder = Request::post(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(Body::from(body.to_vec())).expect("a request")
}

/// Status, `Content-Type` and body of an answer.
async fn answer(response: axum::response::Response) -> (StatusCode, Option<String>, String) {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().expect("ascii").to_owned());
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The access records of `state`'s store, without their time.
fn records(state: &AppState) -> Vec<Value> {
    let store = state.store();
    let id = store.stream(ACCESS_STREAM).expect("the access stream");
    store
        .read(id, Offset::from(0), u64::MAX)
        .expect("read")
        .into_iter()
        .map(|event| {
            let mut record: Value = serde_json::from_slice(&event.payload).expect("JSON");
            record.as_object_mut().expect("an object").remove("time");
            record
        })
        .collect()
}

/// Every answer the lean route gives on its own (after its checks, from the body on) is the
/// router's, byte for byte, with the same access record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_answer_and_record_of_the_lean_route_is_the_routers() {
    let json = Some("application/json");
    let binary = Some("application/octet-stream");
    let cases: [(&str, Option<&str>, &[u8]); 9] = [
        ("/v1/streams/s/events", json, br#"["c", {"d": 1}]"#),
        ("/v1/streams/s/events?expected_offset=4", json, br#"["e"]"#),
        ("/v1/streams/s/events?expected_offset=9", json, br#"["f"]"#),
        ("/v1/streams/nope/events", json, br#"["g"]"#),
        ("/v1/streams/s/events", binary, b"\0\0\0\x05ab"),
        ("/v1/streams/s/events", json, b"[]"),
        ("/v1/streams/s/events", json, b"[1, 2, 3, 4]"),
        ("/v1/streams/s/events", json, b"{not json"),
        ("/v1/streams/s/events", json, &[b'7'; 65]),
    ];
    let (lean_dir, router_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (lean_state, router_state) = (state(lean_dir.path()), state(router_dir.path()));
    let lean = LeanAppend::new(&lean_state);
    let router = crate::router::served_router(router_state.clone());
    for (uri, content_type, body) in cases {
        // Each as a connection serves it: timed, then the lean route or the router.
        let by_lean = crate::router::timed(
            &lean_state,
            request(uri, Some(WRITER), content_type, body),
            |request| async {
                let Ok(taken) = lean.take(&lean_state, request) else {
                    panic!("the lean route takes {uri}");
                };
                lean.serve(&lean_state, taken).await
            },
        )
        .await;
        let by_lean = answer(by_lean).await;
        let by_router = crate::router::timed(
            &router_state,
            request(uri, Some(WRITER), content_type, body),
            |request| async { router.clone().oneshot(request).await.expect("infallible") },
        )
        .await;
        let by_router = answer(by_router).await;
        assert_eq!(
            by_lean,
            by_router,
            "{uri} {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let statuses: Vec<u64> = records(&lean_state)
        .iter()
        .map(|record| record["status"].as_u64().expect("a status"))
        .collect();
    assert_eq!(statuses, [200, 200, 409, 404, 400, 400, 413, 400, 413]);
    assert_eq!(records(&lean_state), records(&router_state));
}

/// What the lean route leaves to the router: what only the router's extractors and the
/// access log's middleware answer (keys, permissions, names, media types, queries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_router_answers_are_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let lean = LeanAppend::new(&state);
    let json = Some("application/json");
    let left: [(&str, Option<&str>, Option<&str>); 11] = [
        ("/v1/streams/s/events", None, json),
        ("/v1/streams/s/events", Some("wrong"), json),
        ("/v1/streams/s/events", Some(READER), json),
        ("/v1/streams/_access/events", Some(WRITER), json),
        ("/v1/streams/s/events", Some(WRITER), None),
        ("/v1/streams/s/events", Some(WRITER), Some("text/plain")),
        ("/v1/streams/s/events?subject=P-1", Some(WRITER), json),
        ("/v1/streams/s/events?expected_offset=x", Some(WRITER), json),
        (
            "/v1/streams/s/events?expected_offset=1&x=2",
            Some(WRITER),
            json,
        ),
        ("/v1/streams/%73/events", Some(WRITER), json),
        ("/v1/streams/s/events/", Some(WRITER), json),
    ];
    for (uri, token, content_type) in left {
        let request = request(uri, token, content_type, b"[\"x\"]");
        assert!(
            lean.take(&state, request).is_err(),
            "{uri} {token:?} {content_type:?}"
        );
    }
    let get = Request::get("/v1/streams/s/events")
        .header("authorization", format!("Bearer {WRITER}"))
        .header("content-type", "application/json")
        .body(Body::empty())
        .expect("a request");
    assert!(lean.take(&state, get).is_err(), "a read");
    let taken = request("/v1/streams/s/events", Some(WRITER), json, b"[\"x\"]");
    assert!(lean.take(&state, taken).is_ok(), "an append");
}
