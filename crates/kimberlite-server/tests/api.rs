//! The `/v1` API end to end over loopback TCP: streams, appends in each encoding, reads,
//! expected-offset conflicts, and the errors bad requests get.

mod common;

use common::{TestServer, ADMIN, AUDITOR, WRITER};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

#[tokio::test]
async fn create_append_read_round_trip() {
    let server = TestServer::start().await;
    let created = server.create_stream("app-ehr").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(json_of(created).await["next_offset"], 0);

    let appended = server
        .post(
            "/v1/streams/app-ehr/events",
            WRITER,
            &json!(["viewed P-1", {"actor": "dr.moreau", "patient": "P-2"}]),
        )
        .await;
    assert_eq!(appended.status(), StatusCode::OK);
    let appended = json_of(appended).await;
    assert_eq!(
        (
            appended["first_offset"].as_u64(),
            appended["next_offset"].as_u64()
        ),
        (Some(0), Some(2))
    );
    assert_eq!(appended["head"].as_str().map(str::len), Some(64));

    let ndjson = server
        .client
        .post(server.url("/v1/streams/app-ehr/events?expected_offset=2"))
        .bearer_auth(WRITER)
        .header("content-type", "application/x-ndjson")
        .body("line three\nline four\n")
        .send()
        .await
        .unwrap();
    assert_eq!(ndjson.status(), StatusCode::OK);
    let mut binary = Vec::new();
    for event in [&b"\xff\x00binary"[..], b"five"] {
        binary.extend_from_slice(&u32::try_from(event.len()).unwrap().to_be_bytes());
        binary.extend_from_slice(event);
    }
    let binary = server
        .client
        .post(server.url("/v1/streams/app-ehr/events"))
        .bearer_auth(WRITER)
        .header("content-type", "application/octet-stream")
        .body(binary)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(binary).await["next_offset"], 6);

    let page = server
        .get("/v1/streams/app-ehr/events?from=1&limit=4", AUDITOR)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = json_of(page).await;
    assert_eq!(
        page["events"][0],
        json!({"offset": 1, "payload": r#"{"actor":"dr.moreau","patient":"P-2"}"#})
    );
    assert_eq!(page["events"][2]["payload"], "line four");
    assert_eq!(
        page["events"][3],
        json!({"offset": 4, "payload_base64": "/wBiaW5hcnk="})
    );
    assert_eq!(
        (page["next_offset"].as_u64(), page["end_offset"].as_u64()),
        (Some(5), Some(6))
    );
    server.stop().await;
}

#[tokio::test]
async fn an_expected_offset_conflict_is_409_with_the_next_offset_and_writes_nothing() {
    let server = TestServer::start().await;
    server.create_stream("app-x").await;
    let post = |expected: u64| {
        server
            .client
            .post(server.url(&format!(
                "/v1/streams/app-x/events?expected_offset={expected}"
            )))
            .bearer_auth(WRITER)
            .json(&json!(["a"]))
            .send()
    };
    assert_eq!(post(0).await.unwrap().status(), StatusCode::OK);
    let conflict = post(0).await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let body = json_of(conflict).await;
    assert_eq!(body["error"]["kind"], "conflict");
    assert_eq!(body["error"]["next_offset"], 1);
    assert_eq!(body["error"]["stream"], "app-x");
    let shown = server.get("/v1/streams/app-x", AUDITOR).await;
    assert_eq!(json_of(shown).await["next_offset"], 1);
    server.stop().await;
}

#[tokio::test]
async fn keys_are_checked_before_streams_are_looked_up() {
    let server = TestServer::start().await;
    server.create_stream("billing").await;
    let no_key = server
        .client
        .get(server.url("/v1/streams/billing/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let wrong_key = server.get("/v1/streams/billing/events", "not-a-key").await;
    assert_eq!(wrong_key.status(), StatusCode::UNAUTHORIZED);
    // The writer may not read, and cannot tell an existing stream from a missing one.
    for stream in ["billing", "no-such-stream"] {
        let refused = server
            .get(&format!("/v1/streams/{stream}/events"), WRITER)
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{stream}");
        assert_eq!(json_of(refused).await["error"]["kind"], "forbidden");
    }
    // The auditor may read but never write.
    let write = server
        .post("/v1/streams/billing/events", AUDITOR, &json!(["x"]))
        .await;
    assert_eq!(write.status(), StatusCode::FORBIDDEN);
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let server = TestServer::start().await;
    server.create_stream("app-y").await;
    let post = |body: &'static str, content_type: &'static str| {
        server
            .client
            .post(server.url("/v1/streams/app-y/events"))
            .bearer_auth(ADMIN)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (body, content_type, status) in [
        ("[\"a\", ", "application/json", StatusCode::BAD_REQUEST),
        ("{\"a\": 1}", "application/json", StatusCode::BAD_REQUEST),
        ("[]", "application/json", StatusCode::BAD_REQUEST),
        ("[\"a\"]", "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            "\0\0\0\x09cut",
            "application/octet-stream",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = post(body, content_type).await.unwrap();
        assert_eq!(response.status(), status, "{body:?} as {content_type}");
        assert!(json_of(response).await["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    for name in ["../x", "a/b", "..", "_access"] {
        let response = server.create_stream(name).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
    }
    let missing = post("[\"a\"]", "application/json");
    drop(missing);
    let unknown = server
        .post("/v1/streams/app-none/events", WRITER, &json!(["a"]))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let shown = server.get("/v1/streams/app-y", ADMIN).await;
    assert_eq!(json_of(shown).await["next_offset"], 0);
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_routes() {
    let server = TestServer::start().await;
    let document = json_of(
        server
            .client
            .get(server.url("/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for path in [
        "/v1/streams",
        "/v1/streams/{stream}",
        "/v1/streams/{stream}/events",
        "/v1/erasures",
        "/v1/cluster",
        "/v1/cluster/learners",
        "/v1/cluster/voters",
        "/v1/cluster/nodes/{id}",
    ] {
        assert!(document["paths"][path].is_object(), "{path} missing");
    }
    // The Raft routes are internal: node to node, with the cluster secret.
    let paths = document["paths"].as_object().unwrap();
    assert!(!paths.keys().any(|path| path.starts_with("/v1/raft")));
    server.stop().await;
}
