//! The witness client end to end, over loopback TCP: three in-process witnesses
//! (`kimberlite-witness`) and a 2-of-3 policy. A checkpoint reaches the quorum and the API
//! says so (the witnessed route, the tiles view's checkpoint, the metrics); with one witness
//! down it still does; the background checkpointer has checkpoints witnessed with no client
//! asking; a witness whose key was rotated does not count; a witness answering garbage or
//! 422 is retried a bounded number of times and breaks nothing.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::witnesses::{
    config, policy, three_witnesses, witness_signer, witnessed_server, TestWitness,
};
use common::{checkpoint_key, LOG_NAME};
use kimberlite::proof::{verify_witnessed, WitnessKey};
use reqwest::StatusCode;
use signed_note::{Note, StandardVerifier, VerifierList};

const STREAM: &str = "ledger";

fn keys_and_urls(witnesses: &[TestWitness]) -> Vec<(WitnessKey, String)> {
    witnesses.iter().map(|w| (w.key(), w.url())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_reaches_two_of_three_and_the_api_says_so() {
    let witnesses = three_witnesses(STREAM).await;
    let policy = policy(&keys_and_urls(&witnesses), 2);
    let server = witnessed_server(config(policy.clone())).await;
    server.append_events(STREAM, &["a", "b", "c"], true).await;
    assert!(server.witnessed(STREAM).await.is_none());
    server.checkpoint(STREAM).await;
    let view = server.wait_witnessed(STREAM, 3).await;
    assert_eq!(view["tree_size"], 3);
    assert_eq!(view["witnessed"], true);
    assert_eq!(
        (view["quorum"].as_u64(), view["witnesses"].as_u64()),
        (Some(2), Some(3))
    );
    let note = view["checkpoint"].as_str().unwrap().to_owned();
    let log = checkpoint_key()
        .renamed(&format!("{LOG_NAME}/{STREAM}"))
        .unwrap();
    let (checkpoint, cosigned) = verify_witnessed(&note, &log.verifier(), &policy).unwrap();
    assert_eq!(checkpoint.tree_size, 3);
    assert!(cosigned.len() >= 2);
    // An independent C2SP client that knows only the log's key reads the cosigned note: the
    // cosignatures are extra signature lines, left unverified.
    let log_only = VerifierList::new(vec![Box::new(
        StandardVerifier::new(&log.verifier().to_text()).unwrap(),
    )]);
    let (verified, unverified) = Note::from_bytes(note.as_bytes())
        .unwrap()
        .verify(&log_only)
        .unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, cosigned.len()));
    // The tiles view serves the witnessed checkpoint, cosignatures included.
    let (status, tiles_note) = server
        .read_as_auditor(&format!("/v1/streams/{STREAM}/tlog/checkpoint"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        policy.check(&tiles_note).unwrap().len() >= 2,
        "{tiles_note}"
    );

    // The log grows: the witnesses are asked from the size they cosigned, with the proof.
    server.append_events(STREAM, &["d", "e"], false).await;
    server.checkpoint(STREAM).await;
    let view = server.wait_witnessed(STREAM, 5).await;
    assert_eq!(view["tree_size"], 5);
    server
        .wait_requests("all six cosigned", |count| count("cosigned") == 6)
        .await;
    for outcome in ["conflict", "bad_proof", "garbage", "unreachable"] {
        assert_eq!(server.witness_requests(outcome).await, 0, "{outcome}");
    }
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kimberlite_checkpoints_witnessed_total 2"),
        "{metrics}"
    );
    // Every witness's state says so.
    for witness in witnesses {
        let dir = witness.stop().await;
        let state = kimberlite_witness::WitnessState::open(dir.path()).unwrap();
        assert_eq!(state.list()[0].cosigned.unwrap().size, 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_witness_down_the_checkpoint_is_still_witnessed() {
    let mut witnesses = three_witnesses(STREAM).await;
    let policy = policy(&keys_and_urls(&witnesses), 2);
    let down = witnesses.remove(0);
    let down_key = down.key();
    down.stop().await;
    let server = witnessed_server(config(policy.clone())).await;
    server.append_events(STREAM, &["a", "b"], true).await;
    server.checkpoint(STREAM).await;
    let view = server.wait_witnessed(STREAM, 2).await;
    let names: Vec<&str> = view["cosigned_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["witness"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{view}");
    assert!(!names.contains(&down_key.name()));
    // The witness that is down was asked the bounded number of times, then left alone.
    server
        .wait_requests("three failed requests", |count| count("unreachable") == 3)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.witness_requests("unreachable").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_checkpointer_has_a_growing_stream_witnessed_unasked() {
    let witnesses = three_witnesses(STREAM).await;
    let mut config = config(policy(&keys_and_urls(&witnesses), 2));
    config.checkpoint_interval = Some(Duration::from_millis(50));
    let server = witnessed_server(config).await;
    server.append_events(STREAM, &["a"], true).await;
    server.wait_witnessed(STREAM, 1).await;
    server.append_events(STREAM, &["b", "c", "d"], false).await;
    let view = server.wait_witnessed(STREAM, 4).await;
    assert_eq!(view["tree_size"], 4);
    // Nothing grew: nothing more is asked.
    let asked = server.witness_requests("cosigned").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.witness_requests("cosigned").await, asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_whose_key_was_rotated_does_not_count() {
    let mut witnesses = three_witnesses(STREAM).await;
    let policy = policy(&keys_and_urls(&witnesses), 2);
    // Witness 2 now signs with a new key under the same name; the policy still has the old.
    let old = witnesses.remove(1);
    let rotated = TestWitness::start(witness_signer(2, 22), &[STREAM]).await;
    let rotated_url = rotated.url();
    old.stop().await;
    // Witness 1 is down: only witness 3's cosignature is valid, one of the two required.
    witnesses.remove(0).stop().await;
    let mut policy_text = policy.to_text();
    policy_text = policy_text.replace(
        &policy.url(&policy.witnesses()[1]).unwrap().to_owned(),
        &rotated_url,
    );
    let policy = kimberlite::proof::WitnessPolicy::parse(&policy_text).unwrap();
    let server = witnessed_server(config(policy.clone())).await;
    server.append_events(STREAM, &["a", "b"], true).await;
    server.checkpoint(STREAM).await;
    server
        .wait_requests("one cosigned, one rotated, one down", |count| {
            count("cosigned") == 1 && count("bad_cosignature") == 1 && count("unreachable") == 3
        })
        .await;
    assert!(server.witnessed(STREAM).await.is_none());
    // The rotated witness's line was not kept: the kept note holds witness 3's only.
    let store = server.state.store();
    let id = store.stream(STREAM).unwrap();
    let kept = wait_kept(&server, id, 1, &policy).await;
    assert!(rotated.key().verify(&kept).is_err());
    assert!(policy.witnesses()[2].verify(&kept).is_ok());
}

/// Waits (bounded) until the kept cosigned checkpoint holds `valid` valid cosignatures.
async fn wait_kept(
    server: &common::TestServer,
    id: kimberlite::StreamId,
    valid: usize,
    policy: &kimberlite::proof::WitnessPolicy,
) -> String {
    for _ in 0..400 {
        if let Some(kept) = server.state.store().latest_cosigned_checkpoint(id).unwrap() {
            let count = policy
                .witnesses()
                .iter()
                .filter(|key| key.verify(&kept.note).is_ok())
                .count();
            if count == valid {
                return kept.note;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the kept cosigned checkpoint never held {valid} valid cosignatures");
}

/// A witness answering every request with `status` and `body`, counting them.
async fn bad_witness(status: u16, body: &'static str) -> (String, Arc<AtomicU32>) {
    let asked = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&asked);
    let app = axum::Router::new().route(
        "/add-checkpoint",
        axum::routing::post(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_answering_garbage_or_422_is_retried_boundedly_and_breaks_nothing() {
    let mut witnesses = three_witnesses(STREAM).await;
    for (status, body, outcome) in [
        (200, "this is not a cosignature\n", "garbage"),
        (422, "bad proof\n", "bad_proof"),
        (409, "not a size", "garbage"),
    ] {
        let (url, asked) = bad_witness(status, body).await;
        let mut keys = keys_and_urls(&witnesses);
        keys[0].1 = url;
        let server = witnessed_server(config(policy(&keys, 2))).await;
        server.append_events(STREAM, &["a", "b"], true).await;
        server.checkpoint(STREAM).await;
        // The two others make the quorum.
        server.wait_witnessed(STREAM, 2).await;
        server
            .wait_requests(outcome, |count| count(outcome) == 3)
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(asked.load(Ordering::SeqCst), 3, "{outcome}");
        // The server still serves.
        server.append_events(STREAM, &["c"], false).await;
        server.stop().await;
    }
    for witness in witnesses.drain(..) {
        witness.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witnessed_route_needs_read_rights_and_a_policy_and_is_documented() {
    let mut witnesses = Vec::new();
    for n in 1..=3 {
        witnesses.push(TestWitness::start(witness_signer(n, n), &["app-ledger", "other"]).await);
    }
    let mut policies = kimberlite_server::WitnessPolicies::new();
    policies
        .add("app-*", policy(&keys_and_urls(&witnesses), 2))
        .unwrap();
    let server = witnessed_server(kimberlite_server::WitnessingConfig::new(policies)).await;
    server.append_events("app-ledger", &["a"], true).await;
    server.append_events("other", &["a"], true).await;
    // No policy for this stream: 404 saying how to give one.
    let (status, body) = server
        .read_as_auditor("/v1/streams/other/checkpoints/witnessed")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("--witness-policy"), "{body}");
    // A key without read rights: 403, whatever the stream.
    for stream in ["app-ledger", "nowhere"] {
        let response = server
            .get(
                &format!("/v1/streams/{stream}/checkpoints/witnessed"),
                common::WRITER,
            )
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{stream}");
    }
    server.checkpoint("app-ledger").await;
    server.wait_witnessed("app-ledger", 1).await;
    server
        .wait_requests("three cosigned", |count| count("cosigned") == 3)
        .await;
    // A stream no rule matches: its checkpoints are not sent to the witnesses (which would
    // cosign them).
    server.checkpoint("other").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.witness_requests("cosigned").await, 3);
    let (status, document) = server.read_as_auditor("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let document: serde_json::Value = serde_json::from_str(&document).unwrap();
    assert!(document["paths"]["/v1/streams/{stream}/checkpoints/witnessed"]["get"].is_object());
    assert!(document["components"]["schemas"]["WitnessedView"].is_object());
}
