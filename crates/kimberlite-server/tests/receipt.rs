//! `GET /v1/streams/{stream}/receipt` over loopback: a receipt an auditor checks offline
//! (`verify_receipt`), witnessed when a cosigned checkpoint covers the event and marked
//! unwitnessed otherwise; clear 404s when nothing can cover it; no rights, no receipt.

mod common;

use common::{checkpoint_key, header, TestServer, AUDITOR, WRITER};
use kimberlite::proof::{
    add_cosignatures, split_note, verify_receipt, ReceiptError, WitnessPolicy, WitnessSigner,
};
use reqwest::StatusCode;

#[tokio::test]
async fn receipts_are_witnessed_when_a_cosigned_checkpoint_covers_the_event() {
    let server = TestServer::start_signing().await;
    server.create_stream("billing").await;
    server.append("billing", &["a", "b", "c"]).await;
    let log = checkpoint_key().verifier();

    // No cosigned checkpoint yet: signed now, and said to be unwitnessed.
    let response = server
        .get("/v1/streams/billing/receipt?offset=1", AUDITOR)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "kimberlite-witnessed"), "false");
    assert_eq!(header(&response, "kimberlite-tree-size"), "3");
    assert!(header(&response, "content-type").starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
    let verified = verify_receipt(&text, &log, None, Some(b"b".as_slice())).unwrap();
    assert_eq!((verified.index, verified.checkpoint.tree_size), (1, 3));

    // A witness cosigns the checkpoint of size 3 (as the witness client keeps it).
    let witness = WitnessSigner::from_seed("w1.example", [5; 32]).unwrap();
    let note = verified_note(&text);
    let line = witness
        .cosign(split_note(&note).unwrap().0, 1_700_000_000)
        .unwrap();
    let store = server.state.store();
    let id = store.stream("billing").unwrap();
    store
        .keep_cosigned_checkpoint(id, &add_cosignatures(&note, &line).unwrap())
        .unwrap();
    server.append("billing", &["d"]).await;
    let policy = WitnessPolicy::new(vec![witness.verifier()], 1).unwrap();

    let response = server
        .get("/v1/streams/billing/receipt?offset=2", AUDITOR)
        .await;
    assert_eq!(header(&response, "kimberlite-witnessed"), "true");
    let text = response.text().await.unwrap();
    let verified = verify_receipt(&text, &log, Some(&policy), Some(b"c".as_slice())).unwrap();
    assert_eq!(verified.cosigned.len(), 1);
    assert_eq!(verified.checkpoint.tree_size, 3);
    // Event 3 is past the cosigned checkpoint: signed now, unwitnessed, below the quorum.
    let response = server
        .get("/v1/streams/billing/receipt?offset=3", AUDITOR)
        .await;
    assert_eq!(header(&response, "kimberlite-witnessed"), "false");
    let text = response.text().await.unwrap();
    assert!(matches!(
        verify_receipt(&text, &log, Some(&policy), None),
        Err(ReceiptError::Witnesses(_))
    ));
}

fn verified_note(receipt: &str) -> String {
    kimberlite::proof::Receipt::parse(receipt)
        .unwrap()
        .checkpoint
}

#[tokio::test]
async fn receipts_that_cannot_be_made_are_clear_404s_and_rights_are_checked_first() {
    let server = TestServer::start_signing().await;
    server.create_stream("billing").await;
    server.append("billing", &["a"]).await;
    let response = server
        .get("/v1/streams/billing/receipt?offset=1", AUDITOR)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("durable end"));
    for path in [
        "/v1/streams/billing/receipt",
        "/v1/streams/billing/receipt?offset=x",
        "/v1/streams/billing/receipt?offset=0&size=1",
    ] {
        let response = server.get(path, AUDITOR).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // A key without read rights learns nothing, not even whether the stream exists.
    for stream in ["billing", "nothing-here"] {
        let path = format!("/v1/streams/{stream}/receipt?offset=0");
        let response = server.get(&path, WRITER).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{stream}");
    }

    // Without a signing key and nothing cosigned, the answer says how to get one.
    let unsigned = TestServer::start().await;
    unsigned.create_stream("billing").await;
    unsigned.append("billing", &["a"]).await;
    let response = unsigned
        .get("/v1/streams/billing/receipt?offset=0", AUDITOR)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("--signing-key"));
    let response = unsigned
        .get("/v1/streams/none/receipt?offset=0", AUDITOR)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let document = server.get("/v1/openapi.json", AUDITOR).await;
    let document = document.text().await.unwrap();
    assert!(document.contains("/v1/streams/{stream}/receipt"));
}
