//! `POST /v1/streams/{stream}/retain` end to end: an admin cuts a stream below a checkpoint
//! the server signed; reads below the cut are 410 `pruned` with the first kept offset; a
//! reader cannot retain; a cut past the checkpoint is 409 and writes nothing.

mod common;

use common::{checkpoint_key, TestServer, ADMIN, AUDITOR, LOG_NAME};
use kimberlite::{Config, ExpectedOffset, Kimberlite};
use kimberlite_server::{Limits, ServerConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

const EVENTS: u64 = 300;

async fn server_over_segments() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    {
        let store =
            Kimberlite::open_with(dir.path(), Config::default().max_segment_size(2048)).unwrap();
        let id = store.create_stream("audit").unwrap();
        for batch in 0..EVENTS / 10 {
            let events: Vec<String> = (batch * 10..batch * 10 + 10)
                .map(|i| format!("e{i}"))
                .collect();
            store.append(id, events, ExpectedOffset::Any).unwrap();
        }
    }
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.limits = Limits::default();
    TestServer::start_full_in(
        dir,
        config,
        common::test_keys(),
        reqwest::Client::new(),
        |state| {
            state
                .with_store_name(LOG_NAME)
                .unwrap()
                .with_signing_key(checkpoint_key())
        },
    )
    .await
}

async fn retain(server: &TestServer, token: &str, before: u64) -> reqwest::Response {
    server
        .post(
            "/v1/streams/audit/retain",
            token,
            &json!({ "before": before }),
        )
        .await
}

#[tokio::test]
async fn an_admin_retains_below_a_signed_checkpoint_and_reads_below_are_gone() {
    let server = server_over_segments().await;
    // Nothing signed yet: refused.
    assert_eq!(
        retain(&server, ADMIN, 100).await.status(),
        StatusCode::CONFLICT
    );
    let signed = server.get("/v1/streams/audit/checkpoint", ADMIN).await;
    assert_eq!(signed.status(), StatusCode::OK);
    assert_eq!(
        retain(&server, AUDITOR, 100).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        retain(&server, ADMIN, EVENTS + 1).await.status(),
        StatusCode::CONFLICT
    );

    let response = retain(&server, ADMIN, 150).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let first = body["first_offset"].as_u64().unwrap();
    assert!(first > 0 && first <= 150, "{body}");
    assert_eq!(body["events_dropped"].as_u64(), Some(first));
    assert_eq!(body["checkpoint_size"].as_u64(), Some(EVENTS));

    let below = server.get("/v1/streams/audit/events?from=0", AUDITOR).await;
    assert_eq!(below.status(), StatusCode::GONE);
    let error: Value = below.json().await.unwrap();
    assert_eq!(error["error"]["kind"], "pruned", "{error}");
    assert_eq!(
        error["error"]["next_offset"].as_u64(),
        Some(first),
        "{error}"
    );
    let kept = server
        .get(
            &format!("/v1/streams/audit/events?from={first}&limit=1"),
            AUDITOR,
        )
        .await;
    assert_eq!(kept.status(), StatusCode::OK);
    let verified = server.get("/v1/streams/audit/verify", AUDITOR).await;
    assert_eq!(verified.status(), StatusCode::OK);
}
