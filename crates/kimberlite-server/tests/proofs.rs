//! Verify, proofs and checkpoints end to end over loopback: what an auditor key fetches is
//! what `kimberlite verify-proof` (its logic, `verify_bundle`) and `kimberlite audit` accept;
//! bad offsets and sizes are 400s; keys without read rights learn nothing.

mod common;

use common::{TestServer, AUDITOR, WRITER};
use kimberlite::proof::{verify_bundle, Checkpoint, SignerKey, Verified};
use kimberlite_server::Limits;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn server_key() -> SignerKey {
    SignerKey::from_seed("server", [11; 32]).unwrap()
}

async fn signing_server() -> TestServer {
    TestServer::start_configured(Limits::default(), |state| {
        state
            .with_store_name("ehr")
            .unwrap()
            .with_signing_key(server_key())
    })
    .await
}

async fn text_of(server: &TestServer, token: &str, path: &str) -> String {
    let response = server.get(path, token).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.unwrap()
}

async fn with_events(server: &TestServer, stream: &str, count: usize) {
    server.create_stream(stream).await;
    let events: Vec<String> = (0..count).map(|i| format!("event-{i}")).collect();
    server.append(stream, &events).await;
}

#[tokio::test]
async fn an_auditor_fetches_a_checkpoint_and_proofs_that_verify_offline() {
    let server = signing_server().await;
    with_events(&server, "billing", 5).await;
    let response = server.get("/v1/streams/billing/checkpoint", AUDITOR).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let note = response.text().await.unwrap();
    // C2SP: origin, size, root; signed under the origin as key name.
    assert!(note.starts_with("ehr/billing\n5\n"), "{note}");
    assert!(note.contains("\n\u{2014} ehr/billing "), "{note}");
    let verifier = server_key().verifier();
    let checkpoint = Checkpoint::open_by_log(&note, &verifier).unwrap();
    assert_eq!(checkpoint.tree_size, 5);

    let inclusion = text_of(
        &server,
        AUDITOR,
        "/v1/streams/billing/proofs/inclusion?offset=2",
    )
    .await;
    assert_eq!(
        verify_bundle(&verifier, &note, &inclusion).unwrap(),
        Verified::Inclusion {
            offset: 2,
            payload: b"event-2".to_vec(),
            tree_size: 5
        }
    );
    let bundle: Value = serde_json::from_str(&inclusion).unwrap();
    assert_eq!(bundle["format"], "kimberlite-inclusion-proof/v1");
    assert_eq!(bundle["origin"], "ehr/billing");

    // A proof against an older tree size verifies against the checkpoint of that size only.
    let old = text_of(
        &server,
        AUDITOR,
        "/v1/streams/billing/proofs/inclusion?offset=1&tree_size=3",
    )
    .await;
    assert!(verify_bundle(&verifier, &note, &old).is_err());

    let consistency = text_of(
        &server,
        AUDITOR,
        "/v1/streams/billing/proofs/consistency?old=2&new=5",
    )
    .await;
    assert_eq!(
        verify_bundle(&verifier, &note, &consistency).unwrap(),
        Verified::Consistency {
            old_size: 2,
            new_size: 5,
            signed_side: "new"
        }
    );
    // A forged checkpoint is refused with the proof.
    let forged = note.replacen("\n5\n", "\n6\n", 1);
    assert!(verify_bundle(&verifier, &forged, &inclusion).is_err());

    // Kept where the CLI keeps checkpoints: the store reads it back as evidence, and
    // `kimberlite audit` takes the file. The stream's id is 2: the access log took 1.
    let kept = server
        .dir
        .path()
        .join("checkpoints/00000000000000000002/00000000000000000005.checkpoint");
    assert_eq!(std::fs::read_to_string(kept).unwrap(), note);
    server.stop().await;
}

#[tokio::test]
async fn verify_reports_an_intact_stream_and_damage_with_its_location() {
    let server = TestServer::start().await;
    with_events(&server, "billing", 5).await;
    let report: Value = server
        .get("/v1/streams/billing/verify", AUDITOR)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["records_checked"].as_u64(), Some(5));
    assert_eq!(report["problems"], json!([]));
    let stream = &report["streams"][0];
    assert_eq!(stream["name"], "billing");
    assert_eq!(stream["next_offset"], 5);
    let anchor = stream["anchor"].as_str().unwrap();
    assert!(anchor.starts_with("billing@5="), "{anchor}");

    // Flip one payload byte in the segment file: still 200, the body names the damage.
    let segment = find_file_holding(server.dir.path(), b"event-3");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes
        .windows(7)
        .position(|window| window == b"event-3")
        .unwrap();
    bytes[at + 6] = b'X';
    std::fs::write(&segment, bytes).unwrap();
    let response = server.get("/v1/streams/billing/verify", AUDITOR).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["intact"], false, "{report}");
    let problem = &report["problems"][0];
    assert_eq!(problem["name"], "billing", "{report}");
    assert_eq!(problem["offset"], 3, "{report}");
    assert!(problem["file"].as_str().is_some(), "{report}");
    assert!(problem["reason"].as_str().is_some_and(|r| !r.is_empty()));
    server.stop().await;
}

/// The file under `dir` whose bytes hold `needle`.
fn find_file_holding(dir: &std::path::Path, needle: &[u8]) -> std::path::PathBuf {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle)
            {
                return path;
            }
        }
    }
    panic!("no file holds {needle:?}");
}

#[tokio::test]
async fn bad_offsets_and_sizes_are_400s_with_a_clear_message() {
    let server = signing_server().await;
    with_events(&server, "billing", 5).await;
    for query in [
        "proofs/inclusion?offset=abc",
        "proofs/inclusion?offset=-1",
        "proofs/inclusion",
        "proofs/inclusion?offset=5",
        "proofs/inclusion?offset=1&tree_size=99",
        "proofs/inclusion?offset=3&tree_size=2",
        "proofs/inclusion?offset=1&tree_size=18446744073709551615",
        "proofs/inclusion?offset=18446744073709551615",
        "proofs/inclusion?offset=99999999999999999999999",
        "proofs/inclusion?offset=1&size=3",
        "proofs/consistency?old=4&new=2",
        "proofs/consistency?old=1&new=99",
        "proofs/consistency?old=0&new=3",
        "proofs/consistency?old=x&new=3",
        "proofs/consistency?new=3",
    ] {
        let response = server
            .get(&format!("/v1/streams/billing/{query}"), AUDITOR)
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["kind"], "bad_request", "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{query}");
        if query.contains("old=4") {
            assert!(message.contains("old tree size 4 is above"), "{message}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn an_auditor_reads_verifies_and_proves_but_cannot_append_and_a_writer_learns_nothing() {
    let server = signing_server().await;
    with_events(&server, "app-billing", 3).await;
    let routes = [
        "events",
        "verify",
        "proofs/inclusion?offset=0",
        "proofs/consistency?old=1&new=3",
        "checkpoint",
    ];
    for route in routes {
        let path = format!("/v1/streams/app-billing/{route}");
        assert_eq!(
            server.get(&path, AUDITOR).await.status(),
            StatusCode::OK,
            "{route}"
        );
        // The writer may append to app-* but not read: 403 whether the stream exists or not.
        for stream in ["app-billing", "app-missing"] {
            let path = format!("/v1/streams/{stream}/{route}");
            let response = server.get(&path, WRITER).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        }
        let missing = format!("/v1/streams/app-missing/{route}");
        assert_eq!(
            server.get(&missing, AUDITOR).await.status(),
            StatusCode::NOT_FOUND,
            "{route}"
        );
        assert_eq!(
            server
                .client
                .get(server.url(&path))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED,
            "{route}"
        );
    }
    let append = server
        .post(
            "/v1/streams/app-billing/events",
            AUDITOR,
            &json!(["forged"]),
        )
        .await;
    assert_eq!(append.status(), StatusCode::FORBIDDEN);
    let shown: Value = server
        .get("/v1/streams/app-billing", AUDITOR)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["next_offset"], 3);
    server.stop().await;
}

#[tokio::test]
async fn without_a_signing_key_the_checkpoint_route_says_how_to_get_one() {
    let server = TestServer::start().await;
    with_events(&server, "billing", 1).await;
    let response = server.get("/v1/streams/billing/checkpoint", AUDITOR).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "not_found");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--signing-key"));
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_follow_verify_and_proof_routes() {
    let server = TestServer::start().await;
    let document: Value = server
        .client
        .get(server.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/streams/{stream}/tail",
        "/v1/streams/{stream}/verify",
        "/v1/streams/{stream}/proofs/inclusion",
        "/v1/streams/{stream}/proofs/consistency",
        "/v1/streams/{stream}/checkpoint",
    ] {
        assert!(document["paths"][path]["get"].is_object(), "{path} missing");
    }
    let read_params = document["paths"]["/v1/streams/{stream}/events"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(read_params.iter().any(|p| p["name"] == "wait_ms"));
    server.stop().await;
}
