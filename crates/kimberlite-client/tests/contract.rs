//! The client's side of the routes the real server does not serve yet (tail, long poll,
//! verify, proofs, checkpoint, keys), against a stand-in that answers them as docs API18
//! describes: the query names the client sends, the bodies it parses, SSE framing and its
//! integrity checks, the long poll's timeout, and proofs that verify offline against the
//! checkpoint served beside them. The stand-in refuses requests whose query is not the
//! contract's, so a renamed parameter fails here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use kimberlite::proof::{
    verify_bundle, Checkpoint, ConsistencyBundle, InclusionBundle, SignerKey, Verified,
    VerifierKey, CONSISTENCY_FORMAT,
};
use kimberlite::{Bytes, ExpectedOffset, Kimberlite, Offset};
use kimberlite_client::{Client, ClientError, ErrorKind, Grant, Permission};
use serde_json::json;

type Params = Query<HashMap<String, String>>;

/// What the stand-in serves: proofs and a checkpoint of a real in-memory store's stream.
struct Fixture {
    inclusion: String,
    consistency: String,
    note: String,
    verifier: VerifierKey,
}

fn fixture() -> Fixture {
    let store = Kimberlite::in_memory();
    let id = store.create_stream("audit").unwrap();
    let events = (0..5).map(|i| Bytes::from(format!("event {i}")));
    store.append(id, events, ExpectedOffset::Any).unwrap();
    let head = store.tree_head(id).unwrap();
    let proof = store.inclusion_proof(id, Offset::new(2), 5).unwrap();
    let bundle = InclusionBundle::new(
        "test/audit",
        2,
        b"event 2",
        proof.tree_size,
        proof.root,
        proof.hashes,
    );
    let consistency = store.consistency_proof(id, 3, 5).unwrap();
    let consistency = ConsistencyBundle {
        format: CONSISTENCY_FORMAT.to_owned(),
        origin: "test/audit".into(),
        old_size: consistency.old_size,
        old_root: consistency.old_root,
        new_size: consistency.new_size,
        new_root: consistency.new_root,
        proof: consistency.hashes,
    };
    let key = SignerKey::generate("test/audit").unwrap();
    let checkpoint = Checkpoint {
        origin: "test/audit".into(),
        tree_size: head.tree_size,
        root: head.root,
        extensions: Vec::new(),
    };
    Fixture {
        inclusion: serde_json::to_string(&bundle).unwrap(),
        consistency: serde_json::to_string(&consistency).unwrap(),
        note: key.sign(&checkpoint.to_text()).unwrap(),
        verifier: key.verifier(),
    }
}

fn bad_request(message: &str) -> Response {
    let body = json!({"error": {"kind": "bad_request", "message": message}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn json_response(text: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        text.to_owned(),
    )
        .into_response()
}

/// `stream` "gappy" skips an offset; "liar" gives an id that is not the offset; "early"
/// starts one before `from`; "slow" sends four events 150 ms apart.
async fn tail(Path(stream): Path<String>, Query(query): Params) -> Response {
    let Some(from) = query.get("from").and_then(|from| from.parse::<u64>().ok()) else {
        return bad_request("from is missing");
    };
    if stream == "slow" {
        let pieces = futures_util::stream::unfold(from, move |offset| async move {
            if offset == from + 4 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            let data = json!({"offset": offset, "payload": "slow"});
            let piece = format!(": keep-alive\n\nid: {offset}\ndata: {data}\n\n");
            Some((Ok::<_, std::io::Error>(piece), offset + 1))
        });
        let body = axum::body::Body::from_stream(pieces);
        return ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
    }
    let from = if stream == "early" { from - 1 } else { from };
    let mut body = String::from(": keep-alive\n\n");
    for (i, offset) in [from, from + 1, from + 2].into_iter().enumerate() {
        let offset = if stream == "gappy" && i == 2 {
            offset + 1
        } else {
            offset
        };
        let id = if stream == "liar" && i == 2 {
            offset + 7
        } else {
            offset
        };
        let data = if i == 1 {
            json!({"offset": offset, "payload_base64": "/wA="})
        } else {
            json!({"offset": offset, "payload": format!("event {offset}")})
        };
        body.push_str(&format!("id: {id}\ndata: {data}\n\n"));
    }
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

/// A long poll that finds nothing: waits the whole `wait_ms`, then an empty page.
async fn events(Query(query): Params) -> Response {
    let from: u64 = query.get("from").and_then(|v| v.parse().ok()).unwrap_or(0);
    let Some(wait_ms) = query.get("wait_ms").and_then(|v| v.parse::<u64>().ok()) else {
        return bad_request("this stand-in only answers long polls");
    };
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    Json(json!({"events": [], "next_offset": from, "end_offset": from})).into_response()
}

async fn verify(Path(stream): Path<String>) -> Response {
    Json(json!({
        "intact": false,
        "records_checked": 41,
        "head": "ab".repeat(32),
        "problems": [{"stream": stream, "offset": 17, "segment": 0,
            "file": "streams/1/00000000.seg", "position": 1234,
            "reason": "hash link broken"}],
        "restart_records_checked": 0,
    }))
    .into_response()
}

async fn inclusion(State(fixture): State<Arc<Fixture>>, Query(query): Params) -> Response {
    match (query.get("offset"), query.get("tree_size")) {
        (Some(offset), Some(size)) if offset == "2" && size == "5" => {
            json_response(&fixture.inclusion)
        }
        _ => bad_request("offset=2&tree_size=5 expected"),
    }
}

async fn consistency(State(fixture): State<Arc<Fixture>>, Query(query): Params) -> Response {
    match (query.get("old"), query.get("new")) {
        (Some(old), Some(new)) if old == "3" && new == "5" => json_response(&fixture.consistency),
        _ => bad_request("old=3&new=5 expected"),
    }
}

async fn checkpoint(State(fixture): State<Arc<Fixture>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        fixture.note.clone(),
    )
        .into_response()
}

async fn list_keys() -> Response {
    Json(json!([{"id": "k1", "name": "auditor",
        "grants": [{"permission": "read", "pattern": "*"}], "revoked": false}]))
    .into_response()
}

async fn create_key(Json(body): Json<serde_json::Value>) -> Response {
    let expected = json!({"name": "ehr", "grants": [{"permission": "append", "pattern": "ehr-*"}]});
    if body != expected {
        return bad_request("unexpected key request");
    }
    (
        StatusCode::CREATED,
        Json(
            json!({"key": {"id": "k2", "name": "ehr", "grants": body["grants"],
            "created": "2026-01-01T00:00:00Z", "revoked": false}, "token": "secret"}),
        ),
    )
        .into_response()
}

async fn revoke_key(Path(id): Path<String>) -> Response {
    if id == "k1" {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let body = json!({"error": {"kind": "not_found", "message": "no such key"}});
        (StatusCode::NOT_FOUND, Json(body)).into_response()
    }
}

/// The stand-in on 127.0.0.1, on its own runtime; the runtime stops when dropped.
fn stand_in(fixture: Arc<Fixture>) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let router = Router::new()
        .route("/v1/streams/{stream}/tail", get(tail))
        .route("/v1/streams/{stream}/events", get(events))
        .route("/v1/streams/{stream}/verify", get(verify))
        .route("/v1/streams/{stream}/proofs/inclusion", get(inclusion))
        .route("/v1/streams/{stream}/proofs/consistency", get(consistency))
        .route("/v1/streams/{stream}/checkpoint", get(checkpoint))
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{id}", delete(revoke_key))
        .with_state(fixture);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, router).await });
    (runtime, url)
}

#[test]
fn tail_yields_each_event_and_refuses_gaps_and_lying_ids() {
    let (_runtime, url) = stand_in(Arc::new(fixture()));
    let client = Client::builder(&url).token("t").build().unwrap();
    let events: Vec<_> = client
        .tail("audit", 4)
        .unwrap()
        .map(|event| event.unwrap())
        .collect();
    let offsets: Vec<u64> = events.iter().map(|event| event.offset).collect();
    assert_eq!(offsets, [4, 5, 6]);
    assert_eq!(events[0].text(), Some("event 4"));
    assert_eq!(events[1].payload, vec![0xff, 0x00]);

    for stream in ["gappy", "liar"] {
        let items: Vec<_> = client.tail(stream, 0).unwrap().collect();
        assert_eq!(
            items.len(),
            3,
            "{stream}: two events, then the error ends it"
        );
        assert!(items[..2].iter().all(Result::is_ok), "{stream}");
        assert!(
            matches!(&items[2], Err(ClientError::Protocol(_))),
            "{stream}: {:?}",
            items[2]
        );
    }
    let early: Vec<_> = client.tail("early", 1).unwrap().collect();
    assert!(
        matches!(early.as_slice(), [Err(ClientError::Protocol(_))]),
        "{early:?}"
    );
}

#[test]
fn a_tail_outlasts_the_request_timeout() {
    let (_runtime, url) = stand_in(Arc::new(fixture()));
    let client = Client::builder(&url)
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let offsets: Vec<u64> = client
        .tail("slow", 10)
        .unwrap()
        .map(|event| event.unwrap().offset)
        .collect();
    assert_eq!(offsets, [10, 11, 12, 13]);
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[test]
fn a_long_poll_may_outlast_the_request_timeout_by_its_wait() {
    let (_runtime, url) = stand_in(Arc::new(fixture()));
    let client = Client::builder(&url)
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let page = client
        .read_wait("audit", 9, None, Duration::from_millis(600))
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(page.events.is_empty() && page.is_last());
    assert_eq!(page.next_offset, 9);
}

#[test]
fn verify_reports_come_back_with_every_problem() {
    let (_runtime, url) = stand_in(Arc::new(fixture()));
    let client = Client::builder(&url).build().unwrap();
    let report = client.verify("audit").unwrap();
    assert!(!report.intact);
    assert_eq!(report.records_checked, 41);
    assert_eq!(report.head.as_deref().map(str::len), Some(64));
    let problem = &report.problems[0];
    assert_eq!(
        (problem.stream.as_deref(), problem.offset, problem.position),
        (Some("audit"), Some(17), Some(1234))
    );
    assert_eq!(problem.reason, "hash link broken");
    assert_eq!(
        report.raw["restart_records_checked"], 0,
        "unnamed fields kept"
    );
}

#[test]
fn served_proofs_verify_offline_against_the_served_checkpoint() {
    let fixture = Arc::new(fixture());
    let (_runtime, url) = stand_in(fixture.clone());
    let client = Client::builder(&url).build().unwrap();
    let note = client.checkpoint("audit").unwrap();
    assert_eq!(note, fixture.note);

    let bundle = client.inclusion_proof("audit", 2, Some(5)).unwrap();
    let json = serde_json::to_string(&bundle).unwrap();
    match verify_bundle(&fixture.verifier, &note, &json).unwrap() {
        Verified::Inclusion {
            offset, payload, ..
        } => assert_eq!((offset, payload.as_slice()), (2, &b"event 2"[..])),
        other => panic!("{other:?}"),
    }
    let bundle = client.consistency_proof("audit", 3, 5).unwrap();
    let json = serde_json::to_string(&bundle).unwrap();
    assert!(matches!(
        verify_bundle(&fixture.verifier, &note, &json).unwrap(),
        Verified::Consistency {
            old_size: 3,
            new_size: 5,
            ..
        }
    ));
    // Without tree_size the stand-in refuses: the client sends the names the contract has.
    let refused = client.inclusion_proof("audit", 2, None).unwrap_err();
    assert_eq!(refused.kind(), Some(&ErrorKind::BadRequest));
}

#[test]
fn keys_are_listed_created_and_revoked() {
    let (_runtime, url) = stand_in(Arc::new(fixture()));
    let client = Client::builder(&url).token("admin").build().unwrap();
    let keys = client.list_keys().unwrap();
    assert_eq!(keys[0].id, "k1");
    assert_eq!(keys[0].grants[0].permission, Permission::Read);
    let grants = [Grant {
        permission: Permission::Append,
        pattern: "ehr-*".into(),
    }];
    let created = client.create_key("ehr", &grants).unwrap();
    assert_eq!(
        (created.key.id.as_str(), created.token.as_str()),
        ("k2", "secret")
    );
    assert_eq!(created.key.grants, grants);
    client.revoke_key("k1").unwrap();
    let missing = client.revoke_key("nope").unwrap_err();
    assert_eq!(missing.kind(), Some(&ErrorKind::NotFound));
}
