//! `--server` on `verify`, `prove`, `prove-consistency`, `checkpoint` and `tail`, through the
//! binary, against a stand-in answering those routes as docs API18 describes (the real
//! routes are being added on other branches; tests/remote.rs covers append and read against
//! the real server). The auditor's whole flow runs without a store: fetch a checkpoint and a
//! proof from the server, check them with `verify-proof` and the server's public key.

mod common;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::{fails, ok, verify_proof};
use kimberlite::proof::{
    Checkpoint, ConsistencyBundle, InclusionBundle, SignerKey, CONSISTENCY_FORMAT,
};
use kimberlite::{Bytes, ExpectedOffset, Kimberlite, Offset};
use serde_json::json;

struct Served {
    inclusion: String,
    consistency: String,
    note: String,
}

/// Proofs and a signed checkpoint of a real in-memory stream of 5 events; and the public key.
fn served() -> (Served, String) {
    let store = Kimberlite::in_memory();
    let id = store.create_stream("audit").unwrap();
    let events = (0..5).map(|i| Bytes::from(format!("event {i}")));
    store.append(id, events, ExpectedOffset::Any).unwrap();
    let head = store.tree_head(id).unwrap();
    let proof = store.inclusion_proof(id, Offset::new(2), 5).unwrap();
    let origin = "server/audit";
    let inclusion = InclusionBundle::new(origin, 2, b"event 2", 5, proof.root, proof.hashes);
    let consistency = store.consistency_proof(id, 3, 5).unwrap();
    let consistency = ConsistencyBundle {
        format: CONSISTENCY_FORMAT.to_owned(),
        origin: origin.into(),
        old_size: 3,
        old_root: consistency.old_root,
        new_size: 5,
        new_root: consistency.new_root,
        proof: consistency.hashes,
    };
    let key = SignerKey::generate(origin).unwrap();
    let checkpoint = Checkpoint {
        origin: origin.into(),
        tree_size: head.tree_size,
        root: head.root,
        extensions: Vec::new(),
    };
    let served = Served {
        inclusion: serde_json::to_string(&inclusion).unwrap(),
        consistency: serde_json::to_string(&consistency).unwrap(),
        note: key.sign(&checkpoint.to_text()).unwrap(),
    };
    (served, key.verifier().to_text())
}

fn as_json(text: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        text.to_owned(),
    )
        .into_response()
}

async fn verify(Path(stream): Path<String>) -> Response {
    let intact = stream != "damaged";
    let problems = if intact {
        json!([])
    } else {
        json!([{"stream": stream, "offset": 17, "file": "streams/1/00000000.seg",
                "position": 1234, "reason": "hash link broken"}])
    };
    Json(
        json!({"intact": intact, "records_checked": 41, "head": "ab".repeat(32),
        "problems": problems}),
    )
    .into_response()
}

async fn tail(Query(query): Query<std::collections::HashMap<String, String>>) -> Response {
    let from: u64 = query["from"].parse().unwrap();
    let body: String = (from..from + 3)
        .map(|offset| {
            let data = json!({"offset": offset, "payload": format!("event {offset}")});
            format!(": keep-alive\n\nid: {offset}\ndata: {data}\n\n")
        })
        .collect();
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

/// The stand-in on 127.0.0.1; it stops with the runtime.
fn stand_in(served: Served) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let router = Router::new()
        .route("/v1/streams/{stream}/verify", get(verify))
        .route("/v1/streams/{stream}/tail", get(tail))
        .route(
            "/v1/streams/{stream}/proofs/inclusion",
            get(|State(s): State<Arc<Served>>| async move { as_json(&s.inclusion) }),
        )
        .route(
            "/v1/streams/{stream}/proofs/consistency",
            get(|State(s): State<Arc<Served>>| async move { as_json(&s.consistency) }),
        )
        .route(
            "/v1/streams/{stream}/checkpoint",
            get(|State(s): State<Arc<Served>>| async move { s.note.clone() }),
        )
        .with_state(Arc::new(served));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, router).await });
    (runtime, url)
}

#[test]
fn an_auditor_checks_served_proofs_without_a_store() {
    let (served, public) = served();
    let (_runtime, url) = stand_in(served);
    let temp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = temp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let pubkey = write("server.pub", &format!("{public}\n"));
    let note = ok(&["checkpoint", "--server", &url, "audit"], "");
    assert!(note.starts_with("server/audit\n5\n"), "{note}");
    let checkpoint = write("checkpoint", &note);
    let proof = ok(
        &["prove", "--server", &url, "audit", "2", "--size", "5"],
        "",
    );
    let proof = write("inclusion.json", &proof);
    let valid = verify_proof(&pubkey, &checkpoint, &proof);
    assert!(valid.starts_with("valid: the event at offset 2"), "{valid}");
    let proof = ok(
        &["prove-consistency", "--server", &url, "audit", "3", "5"],
        "",
    );
    let proof = write("consistency.json", &proof);
    let valid = verify_proof(&pubkey, &checkpoint, &proof);
    assert!(valid.contains("extends the tree of 3 events"), "{valid}");
}

#[test]
fn verify_exits_by_the_servers_report() {
    let (served, _) = served();
    let (_runtime, url) = stand_in(served);
    let intact = ok(&["verify", "--server", &url, "audit"], "");
    assert!(intact.contains("intact: 41 records"), "{intact}");
    let damaged = fails(
        &["verify", "--server", &url, "damaged"],
        "",
        1,
        "NOT INTACT",
    );
    assert!(
        damaged.stdout.contains(
            "TAMPERED  damaged offset 17, file streams/1/00000000.seg, byte 1234: hash link broken"
        ),
        "{}",
        damaged.stdout
    );
    let json = fails(
        &["verify", "--server", &url, "damaged", "--json"],
        "",
        1,
        "",
    );
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["problems"][0]["offset"], 17);
}

#[test]
fn tail_prints_the_events_the_server_sends() {
    let (served, _) = served();
    let (_runtime, url) = stand_in(served);
    let out = ok(
        &["tail", "--server", &url, "audit", "--from", "4", "--json"],
        "",
    );
    assert_eq!(
        out,
        "{\"offset\":4,\"payload\":\"event 4\"}\n{\"offset\":5,\"payload\":\"event 5\"}\n\
         {\"offset\":6,\"payload\":\"event 6\"}\n"
    );
}
