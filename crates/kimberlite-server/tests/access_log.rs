//! The access log end to end: every request with a known key leaves a record in `_access`
//! (appends, reads, refusals), requests without one leave none, and `_access` is read like any
//! stream but written by the server alone.

mod common;

use common::{TestServer, ADMIN, AUDITOR, WRITER};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The access records so far, read with the auditor's key (which records that read too, after
/// the page is taken).
async fn access_records(server: &TestServer) -> Vec<Value> {
    let page: Value = server
        .get("/v1/streams/_access/events?limit=1000", AUDITOR)
        .await
        .json()
        .await
        .unwrap();
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| serde_json::from_str(event["payload"].as_str().unwrap()).unwrap())
        .collect()
}

/// A record without its time, after checking the time is RFC 3339 UTC with milliseconds.
fn without_time(mut record: Value) -> Value {
    let time = record["time"].as_str().unwrap().to_owned();
    assert_eq!(time.len(), 24, "{time}");
    assert!(time.ends_with('Z') && &time[10..11] == "T", "{time}");
    record.as_object_mut().unwrap().remove("time");
    record
}

#[tokio::test]
async fn appends_reads_and_refusals_are_recorded_with_their_key_stream_and_offsets() {
    let server = TestServer::start().await;
    assert_eq!(server.create_stream("app-ehr").await.status(), 201);
    let appended = server
        .post(
            "/v1/streams/app-ehr/events",
            WRITER,
            &json!(["viewed P-1", "viewed P-2"]),
        )
        .await;
    assert_eq!(appended.status(), StatusCode::OK);
    let read = server
        .get("/v1/streams/app-ehr/events?from=1", AUDITOR)
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    // A known key refused (403) is recorded; an unknown key and no key are not.
    let refused = server.get("/v1/streams/app-ehr/events", WRITER).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for key in [Some("not-a-key"), None] {
        let request = server.client.get(server.url("/v1/streams/app-ehr/events"));
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    let conflict = server
        .post(
            "/v1/streams/app-ehr/events?expected_offset=0",
            WRITER,
            &json!(["late"]),
        )
        .await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    // A stream named in the body, not the path, is recorded too, refused or not.
    assert_eq!(server.create_stream("app-ehr").await.status(), 409);

    let records: Vec<Value> = access_records(&server)
        .await
        .into_iter()
        .map(without_time)
        .collect();
    let events = "/v1/streams/{stream}/events";
    assert_eq!(
        records,
        vec![
            json!({"key": "admin", "op": "POST /v1/streams", "stream": "app-ehr",
                   "status": 201}),
            json!({"key": "writer", "op": format!("POST {events}"), "stream": "app-ehr",
                   "from": 0, "to": 2, "status": 200}),
            json!({"key": "auditor", "op": format!("GET {events}"), "stream": "app-ehr",
                   "from": 1, "to": 2, "status": 200}),
            json!({"key": "writer", "op": format!("GET {events}"), "stream": "app-ehr",
                   "status": 403, "kind": "forbidden"}),
            json!({"key": "writer", "op": format!("POST {events}"), "stream": "app-ehr",
                   "status": 409, "kind": "conflict"}),
            json!({"key": "admin", "op": "POST /v1/streams", "stream": "app-ehr",
                   "status": 409, "kind": "conflict"}),
        ]
    );
    // The auditor's read of the log is itself recorded, with the offsets it was shown.
    let again = access_records(&server).await;
    assert_eq!(
        without_time(again[6].clone()),
        json!({"key": "auditor", "op": format!("GET {events}"), "stream": "_access",
               "from": 0, "to": 6, "status": 200})
    );
    server.stop().await;
}

#[tokio::test]
async fn the_access_log_is_read_only_to_keys_with_read_on_it_and_written_by_the_server_alone() {
    let server = TestServer::start().await;
    let read_log = |key: &'static str| {
        server
            .client
            .get(server.url("/v1/streams/_access/events"))
            .bearer_auth(key)
            .send()
    };
    // An append-only key cannot read it; the admin (read implied) and the auditor can.
    assert_eq!(read_log(WRITER).await.unwrap().status(), 403);
    assert_eq!(read_log(ADMIN).await.unwrap().status(), 200);
    assert_eq!(read_log(AUDITOR).await.unwrap().status(), 200);
    // No key may write it, not even one granted append on every stream.
    let before = access_records(&server).await.len();
    for body in [
        json!(["forged"]),
        json!([{"key": "auditor", "op": "nothing"}]),
    ] {
        let forged = server
            .post("/v1/streams/_access/events", ADMIN, &body)
            .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    }
    let records = access_records(&server).await;
    // The read that counted them, then the two refusals; nothing forged.
    assert_eq!(records.len(), before + 3);
    assert!(records
        .iter()
        .all(|record| record["key"].is_string() && record["op"].is_string()));
    for refusal in &records[before + 1..] {
        assert_eq!(
            (refusal["key"].as_str(), refusal["status"].as_u64()),
            (Some("admin"), Some(403))
        );
        assert_eq!(refusal["kind"], "forbidden");
    }
    // Nor can it be created again or deleted by name.
    assert_eq!(server.create_stream("_access").await.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn the_access_log_survives_a_restart_and_goes_on_in_the_same_stream() {
    let server = TestServer::start().await;
    server.create_stream("app-a").await;
    let dir = server.dir.path().to_owned();
    let first = access_records(&server).await.len();
    assert_eq!(first, 1);
    let kept = TestServer::restart(server).await;
    assert_eq!(kept.dir.path(), dir);
    // The creation, the first read and now this read: one chain across restarts.
    assert_eq!(access_records(&kept).await.len(), 2);
    let verified = kept.get("/v1/streams/_access", AUDITOR).await;
    let verified: Value = verified.json().await.unwrap();
    assert_eq!(verified["damaged"], false);
    kept.stop().await;
}

/// An append's events and its access record are made durable by one sync, not one after the
/// other: the record is written with the events (`access_writer.rs`).
#[tokio::test]
async fn an_append_and_its_access_record_take_one_sync() {
    let server = TestServer::start().await;
    assert_eq!(server.create_stream("app-one").await.status(), 201);
    let store = server.state.store();
    for round in 0..5u64 {
        let before = store.syncs_completed();
        let appended = server
            .post(
                "/v1/streams/app-one/events",
                WRITER,
                &json!([format!("event {round}")]),
            )
            .await;
        assert_eq!(appended.status(), StatusCode::OK);
        assert_eq!(store.syncs_completed() - before, 1, "append {round}");
    }
    let appends: Vec<Value> = access_records(&server)
        .await
        .into_iter()
        .map(without_time)
        .filter(|record| record["op"] == "POST /v1/streams/{stream}/events")
        .collect();
    let expected: Vec<Value> = (0..5u64)
        .map(|offset| {
            json!({"key": "writer", "op": "POST /v1/streams/{stream}/events",
                   "stream": "app-one", "from": offset, "to": offset + 1, "status": 200})
        })
        .collect();
    assert_eq!(appends, expected);
    server.stop().await;
}
