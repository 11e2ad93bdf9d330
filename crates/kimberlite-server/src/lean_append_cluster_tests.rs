//! The lean append route in cluster mode: a leader takes appends and answers as its router
//! does (through Raft, with the log position and the client's request id); a follower leaves
//! them to its router, which sends the client to the leader.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::StatusCode;
use serde_json::Value;
use tower::ServiceExt as _;

use super::LeanAppend;
use crate::config::{Limits, ServerConfig};
use crate::keys::KeyRing;
use crate::principal::{Permission, Principal};
use crate::state::AppState;
use crate::{node_state, ClusterConfig, Server, LOG_POSITION_HEADER, REQUEST_ID_HEADER};

const ADMIN: &str = "admin-token";

fn keys() -> KeyRing {
    let grants = [(Permission::Admin, "*"), (Permission::Append, "*")];
    KeyRing::from_tokens(vec![(ADMIN.into(), Principal::new("kid_admin", &grants))])
}

/// Three nodes, each a real server on loopback (Raft messages go over HTTP).
struct Nodes {
    /// Each node's id, state and base URL.
    nodes: Vec<(u64, AppState, String)>,
    _dir: tempfile::TempDir,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Nodes {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listeners: Vec<(u64, std::net::TcpListener, String)> = (1..=3)
            .map(|id| {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                let url = format!("http://{}", listener.local_addr().expect("addr"));
                (id, listener, url)
            })
            .collect();
        let peers: BTreeMap<u64, String> = listeners
            .iter()
            .map(|(id, _, url)| (*id, url.clone()))
            .collect();
        let (mut nodes, mut stops) = (Vec::new(), Vec::new());
        for (id, listener, url) in listeners {
            let path = dir.path().join(format!("node-{id}"));
            let mut config = ClusterConfig::new(id, &path, peers.clone(), "test-secret");
            config.bootstrap = id == 1;
            config.node.sync = false;
            let state = node_state(config, keys(), Limits::default())
                .await
                .expect("node starts");
            let server_config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
            let server =
                Server::with_listener(&server_config, state.clone(), listener).expect("server");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(server.run(async move {
                let _ = stopped.await;
            }));
            nodes.push((id, state, url));
            stops.push(stop);
        }
        Self {
            nodes,
            _dir: dir,
            _stops: stops,
        }
    }

    /// The leader's index in `nodes`, once there is one (at most 10 s).
    async fn leader(&self) -> usize {
        for _ in 0..500 {
            let leaders: Vec<usize> = (0..self.nodes.len())
                .filter(|&index| {
                    let state = &self.nodes[index].1;
                    state.cluster().expect("a cluster").is_leader()
                })
                .collect();
            if let [leader] = leaders[..] {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no leader");
    }
}

fn request(uri: &str, content_type: &str, request_id: Option<&str>, body: &[u8]) -> Request {
    let mut builder = Request::post(uri)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", content_type);
    if let Some(request_id) = request_id {
        builder = builder.header(REQUEST_ID_HEADER, request_id);
    }
    builder.body(Body::from(body.to_vec())).expect("a request")
}

/// What must be the same either way: status, `Content-Type`, whether the log position and a
/// `Location` are named, and the body, its stream named `S` and without its head (a chain
/// hash, which differs from stream to stream).
type Answer = (StatusCode, Option<String>, bool, bool, Value);

async fn answer(response: axum::response::Response, stream: &str) -> Answer {
    let headers = response.headers().clone();
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = String::from_utf8_lossy(&body).replace(stream, "S");
    let mut body: Value = serde_json::from_str(&body).expect("a JSON answer");
    if let Some(head) = body.as_object_mut().and_then(|body| body.remove("head")) {
        assert_eq!(head.as_str().map(str::len), Some(64), "{head}");
    }
    (
        status,
        headers
            .get("content-type")
            .map(|value| value.to_str().expect("ascii").to_owned()),
        headers.contains_key(LOG_POSITION_HEADER),
        headers.contains_key("location"),
        body,
    )
}

/// An append of each way: query, content type, request id (the lean route's and the
/// router's), body, and the status expected.
type Case<'a> = (&'a str, &'a str, Option<[&'a str; 2]>, &'a [u8], u16);

/// Each append a leader's lean route takes is answered as its router answers the same append
/// to a stream in the same state, with the same access record; a retry with the same request
/// id gets the first answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaders_lean_route_answers_as_its_router() {
    let nodes = Nodes::start().await;
    let state = nodes.nodes[nodes.leader().await].1.clone();
    let lean = LeanAppend::new(&state);
    let router = crate::router::served_router(state.clone());
    for stream in ["lean-s", "router-s"] {
        let create = Request::post("/v1/streams")
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .body(Body::from(format!(r#"{{"name": "{stream}"}}"#)))
            .expect("a request");
        let created = router.clone().oneshot(create).await.expect("infallible");
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let (json, binary) = ("application/json", "application/octet-stream");
    let cases: [Case; 9] = [
        ("", json, None, br#"["a", "b"]"#, 200),
        ("?expected_offset=2", json, None, br#"["c"]"#, 200),
        ("?expected_offset=9", json, None, br#"["d"]"#, 409),
        ("", json, Some(["a1-1", "b1-1"]), br#"["e"]"#, 200),
        // The retry: the first answer again, nothing appended.
        ("", json, Some(["a1-1", "b1-1"]), br#"["e"]"#, 200),
        ("", json, None, br#"["f"]"#, 200),
        ("", json, Some(["zz", "zz"]), br#"["g"]"#, 400),
        ("", binary, None, b"\0\0\0\x05ab", 400),
        ("", json, None, b"{not json", 400),
    ];
    let mut answers = Vec::new();
    for (query, content_type, request_id, body, status) in cases {
        let [lean_id, router_id] = match request_id {
            Some(ids) => ids.map(Some),
            None => [None, None],
        };
        let uri = format!("/v1/streams/lean-s/events{query}");
        let by_lean = crate::router::timed(
            &state,
            request(&uri, content_type, lean_id, body),
            |request| async {
                let Ok(taken) = lean.take(&state, request) else {
                    panic!("a leader's lean route takes {uri}");
                };
                lean.serve(&state, taken).await
            },
        )
        .await;
        let by_lean = answer(by_lean, "lean-s").await;
        let uri = format!("/v1/streams/router-s/events{query}");
        let request = request(&uri, content_type, router_id, body);
        let by_router = crate::router::timed(&state, request, |request| async {
            router.clone().oneshot(request).await.expect("infallible")
        })
        .await;
        let by_router = answer(by_router, "router-s").await;
        assert_eq!(by_lean.0.as_u16(), status, "{uri}: {by_lean:?}");
        assert_eq!(by_lean, by_router, "{uri}");
        answers.push(by_lean);
    }
    assert_eq!(answers[3], answers[4], "a retry gets the first answer");
    assert_eq!(
        answers[5].4["first_offset"], 4,
        "the retry appended nothing"
    );
    let records = records(&router, "lean-s").await;
    assert_eq!(records.len(), cases.len(), "{records:?}");
    assert_eq!(records, self::records(&router, "router-s").await);
}

/// The node's access records of appends to `stream` (node-local, read through its router),
/// without their time, the stream named `S`.
async fn records(router: &axum::Router, stream: &str) -> Vec<Value> {
    let read = Request::get("/v1/streams/_access/events?from=0")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .expect("a request");
    let read = router.clone().oneshot(read).await.expect("infallible");
    assert_eq!(read.status(), StatusCode::OK);
    let page = to_bytes(read.into_body(), usize::MAX).await.expect("body");
    let page: Value = serde_json::from_slice(&page).expect("JSON");
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            let record = event["payload"].as_str().expect("a text record");
            let mut record: Value = serde_json::from_str(record).expect("a JSON record");
            record.as_object_mut().expect("an object").remove("time");
            record
        })
        .filter(|record| record["stream"] == stream && record["op"] != "POST /v1/streams")
        .map(|record| serde_json::from_str(&record.to_string().replace(stream, "S")).expect("JSON"))
        .collect()
}

/// A follower's lean route leaves appends to its router: the client is sent to the leader,
/// same path and query.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followers_lean_route_leaves_appends_to_its_router() {
    let nodes = Nodes::start().await;
    let leader = nodes.leader().await;
    let follower = (leader + 1) % nodes.nodes.len();
    let (_, state, url) = &nodes.nodes[follower];
    let path = "/v1/streams/s/events?expected_offset=0";
    let lean = LeanAppend::new(state);
    let taken = lean.take(state, request(path, "application/json", None, b"[\"a\"]"));
    assert!(taken.is_err(), "a follower's lean route takes no append");
    let redirected = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
        .post(format!("{url}{path}"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("[\"a\"]")
        .send()
        .await
        .expect("an answer");
    assert_eq!(redirected.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = redirected.headers()["location"].to_str().expect("ascii");
    assert_eq!(location, format!("{}{path}", nodes.nodes[leader].2));
}
