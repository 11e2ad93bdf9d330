//! Keys end to end: the admin API, a key file changed beside the running server (as
//! `kimberlite key` does) counting from the next request, a server with no keys, and a key
//! file broken while running.

mod common;

use common::{TestServer, ADMIN, AUDITOR, WRITER};
use kimberlite_server::{Grant, KeyRing, Permission, ServerConfig, KEY_FILE_NAME};
use serde_json::json;

#[tokio::test]
async fn the_admin_api_adds_lists_and_revokes_keys() {
    let server = TestServer::start().await;
    let created = server.post("/v1/keys", ADMIN, &json!({"name": "billing", "grants": [{"permission": "append", "pattern": "billing-*"}, {"permission": "read", "pattern": "billing-*"}]})).await;
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.expect("json");
    let token = created["token"].as_str().expect("token").to_owned();
    let id = created["key"]["id"].as_str().expect("id").to_owned();
    assert!(token.starts_with("kb_"));
    assert_eq!(server.create_stream("billing-1").await.status(), 201);
    let append = |token: String| {
        let request = server
            .client
            .post(server.url("/v1/streams/billing-1/events"))
            .bearer_auth(token)
            .json(&json!(["x"]));
        async move { request.send().await.expect("append").status() }
    };
    assert_eq!(append(token.clone()).await, 200);
    let listed: serde_json::Value = server
        .get("/v1/keys", ADMIN)
        .await
        .json()
        .await
        .expect("json");
    let text = listed.to_string();
    assert!(text.contains(&id) && !text.contains(&token), "{text}");
    // Keys without admin on every stream may not manage keys.
    for other in [AUDITOR, WRITER] {
        let refused = server.get("/v1/keys", other).await;
        assert_eq!(refused.status(), 403);
    }
    let revoked = server
        .client
        .delete(server.url(&format!("/v1/keys/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    assert_eq!(append(token).await, 401, "refused from the next request on");
    let unknown = server
        .client
        .delete(server.url("/v1/keys/kid_0000000000000000"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("revoke");
    assert_eq!(unknown.status(), 404);
    let bad = server
        .post("/v1/keys", ADMIN, &json!({"name": "", "grants": []}))
        .await;
    assert_eq!(bad.status(), 400);
    server.stop().await;
}

fn admin_grants() -> Vec<Grant> {
    vec![Grant {
        permission: Permission::Admin,
        pattern: "*".into(),
    }]
}

async fn file_server(path: &std::path::Path) -> TestServer {
    let keys = KeyRing::open(path).expect("key file");
    let config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    TestServer::start_custom(config, keys, reqwest::Client::new()).await
}

async fn list_status(server: &TestServer, token: &str) -> (u16, String) {
    let response = server.get("/v1/streams", token).await;
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

#[tokio::test]
async fn a_key_revoked_in_the_file_is_refused_from_the_next_request_on() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(KEY_FILE_NAME);
    let server = file_server(&path).await;
    let (status, body) = list_status(&server, "kb_anything").await;
    assert_eq!(status, 401);
    assert!(
        body.contains("kimberlite key add"),
        "says how to add a key: {body}"
    );
    // Added and revoked by another process's ring, as `kimberlite key` would.
    let cli = KeyRing::open(&path).expect("open");
    let added = cli.add("ops", admin_grants()).expect("add");
    let spare = cli.add("spare", admin_grants()).expect("add");
    assert_eq!(
        list_status(&server, &added.token).await.0,
        200,
        "picked up with no restart"
    );
    cli.revoke(&added.entry.id).expect("revoke");
    assert_eq!(list_status(&server, &added.token).await.0, 401);
    assert_eq!(list_status(&server, &spare.token).await.0, 200);
    // A key file broken while running refuses every key until repaired.
    let good = std::fs::read(&path).expect("read");
    std::fs::write(&path, b"{ not json").expect("break");
    let (status, body) = list_status(&server, &spare.token).await;
    assert_eq!(status, 503, "{body}");
    std::fs::write(&path, good).expect("repair");
    assert_eq!(list_status(&server, &spare.token).await.0, 200);
    server.stop().await;
}
