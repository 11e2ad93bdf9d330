//! Erasure over HTTP (`docs/COMPLIANCE.md`, "Erasure"): appends sealed for a data subject with
//! the server's master key, reads opened by the server, `POST /v1/erasures` for admins on every
//! stream only, the events read back as erased, and the access log recording the erasure
//! without the subject.

mod common;

use std::sync::Arc;

use common::{TestServer, ADMIN, AUDITOR, WRITER};
use kimberlite::sealed::MasterKey;
use kimberlite_server::Limits;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn read_page(server: &TestServer, stream: &str) -> Value {
    server
        .get(&format!("/v1/streams/{stream}/events?limit=1000"), AUDITOR)
        .await
        .json()
        .await
        .unwrap()
}

async fn erase(server: &TestServer, token: &str, subject: &str) -> reqwest::Response {
    server
        .post("/v1/erasures", token, &json!({ "subject": subject }))
        .await
}

#[tokio::test]
async fn a_subject_is_sealed_read_erased_and_the_erasure_recorded() {
    let (master, _) = MasterKey::generate();
    let server = TestServer::start_configured(Limits::default(), |state| {
        state.with_master_key(Arc::new(master)).expect("key store")
    })
    .await;
    assert_eq!(server.create_stream("app-ehr").await.status(), 201);
    let appended = server
        .post(
            "/v1/streams/app-ehr/events?subject=patient-7",
            WRITER,
            &json!(["diagnosis of patient seven", "second note"]),
        )
        .await;
    assert_eq!(appended.status(), StatusCode::OK);
    let page = read_page(&server, "app-ehr").await;
    assert_eq!(page["events"][0]["payload"], "diagnosis of patient seven");

    assert_eq!(
        erase(&server, AUDITOR, "patient-7").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        erase(&server, WRITER, "patient-7").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        erase(&server, ADMIN, "nobody").await.status(),
        StatusCode::NOT_FOUND
    );
    let erased = erase(&server, ADMIN, "patient-7").await;
    assert_eq!(erased.status(), StatusCode::OK);
    let receipt: Value = erased.json().await.unwrap();
    assert_eq!(receipt["events"], 2);
    assert_eq!(receipt["offset"], 0);
    assert_eq!(
        erase(&server, ADMIN, "patient-7").await.status(),
        StatusCode::CONFLICT
    );

    let page = read_page(&server, "app-ehr").await;
    let first = &page["events"][0];
    assert!(first.get("payload").is_none(), "{first}");
    assert_eq!(first["sealed"]["state"], "erased");
    assert_eq!(first["sealed"]["erasure_offset"], 0);
    assert!(first["sealed"]["erased_on"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let access = read_page(&server, "_access").await;
    let records: Vec<String> = access["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["payload"].as_str().unwrap().to_owned())
        .collect();
    let recorded: Vec<Value> = records
        .iter()
        .map(|record| serde_json::from_str(record).unwrap())
        .filter(|record: &Value| record["op"] == "POST /v1/erasures" && record["status"] == 200)
        .collect();
    assert_eq!(recorded.len(), 1, "{records:?}");
    assert_eq!(recorded[0]["stream"], "_erasure");
    assert_eq!(recorded[0]["from"], 0);
    assert_eq!(recorded[0]["key"], "admin");
    assert!(
        !records.iter().any(|r| r.contains("patient-7")),
        "{records:?}"
    );
}

#[tokio::test]
async fn without_a_master_key_sealed_events_are_refused_and_shown_sealed() {
    let server = TestServer::start().await;
    assert_eq!(server.create_stream("app-ehr").await.status(), 201);
    let refused = server
        .post(
            "/v1/streams/app-ehr/events?subject=patient-7",
            WRITER,
            &json!(["secret"]),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        erase(&server, ADMIN, "patient-7").await.status(),
        StatusCode::BAD_REQUEST
    );
    // A plain event cannot pass for a sealed one.
    let forged = server
        .post(
            "/v1/streams/app-ehr/events",
            WRITER,
            &json!(["\u{0}KBSEAL\u{1}forged"]),
        )
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
}
