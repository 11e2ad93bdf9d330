//! The tlog-tiles read API over loopback TCP, followed by independent C2SP implementations
//! (`signed_note`, `tlog_tiles`): the checkpoint's signature by a key named as its origin,
//! every tile authenticated by the test's own hashing against the signed root (never by
//! `tlog_tiles`' `TileHashReader`, seen answering from tiles it never authenticated),
//! entry bundles, inclusion proofs built by `tlog_tiles` and checked by us, caching headers,
//! and the errors of bad requests.

mod common;

use std::collections::HashMap;

use common::{checkpoint_key, TestServer, ADMIN, AUDITOR, LOG_NAME, WRITER};
use kimberlite::proof::{
    event_leaf_bytes, event_leaf_hash, parse_entry_bundle, tiles_of, verify_inclusion, Hash, TileId,
};
use reqwest::StatusCode;
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Tile, TileHashReader, TileReader};

const EVENTS: u64 = 1_000;

fn payload(offset: u64) -> Vec<u8> {
    format!("event {offset}").into_bytes()
}

/// Appends `payloads` to `stream` as one length-prefixed binary batch.
async fn append(server: &TestServer, stream: &str, payloads: &[Vec<u8>]) {
    let mut body = Vec::new();
    for payload in payloads {
        body.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        body.extend_from_slice(payload);
    }
    let response = server
        .client
        .post(server.url(&format!("/v1/streams/{stream}/events")))
        .bearer_auth(WRITER)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// `GET` a path of `stream`'s tlog prefix with `token`: status, content type, cache control,
/// body.
async fn get(
    server: &TestServer,
    stream: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, String, String, Vec<u8>) {
    let mut request = server
        .client
        .get(server.url(&format!("/v1/streams/{stream}/tlog/{path}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (content_type, cache) = (header("content-type"), header("cache-control"));
    let status = response.status();
    (
        status,
        content_type,
        cache,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// Tiles fetched over HTTP, served to `tlog_tiles` from memory.
struct Fetched(HashMap<String, Vec<u8>>);

impl TileReader for Fetched {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|tile| {
                let path = tile.path().replacen("tile/8/", "tile/", 1);
                self.0
                    .get(&path)
                    .cloned()
                    .ok_or(tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

/// RFC 9162's `MTH`, with `tlog_tiles`' node hash.
fn mth(leaves: &[tlog_tiles::Hash]) -> tlog_tiles::Hash {
    match leaves.len() {
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            tlog_tiles::node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
        }
    }
}

#[tokio::test]
async fn a_c2sp_client_follows_a_stream_over_http() {
    let server = TestServer::start_signing().await;
    assert_eq!(
        server.create_stream("app-audit").await.status(),
        StatusCode::CREATED
    );
    let payloads: Vec<Vec<u8>> = (0..EVENTS).map(payload).collect();
    append(&server, "app-audit", &payloads).await;

    // The checkpoint: a signed note by the key named as the origin.
    let (status, content_type, cache, note) =
        get(&server, "app-audit", "checkpoint", Some(AUDITOR)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; charset=utf-8");
    assert_eq!(cache, "no-store");
    let origin = format!("{LOG_NAME}/app-audit");
    let vkey = checkpoint_key()
        .renamed(&origin)
        .unwrap()
        .verifier()
        .to_text();
    let known = VerifierList::new(vec![Box::new(StandardVerifier::new(&vkey).unwrap())]);
    let note = Note::from_bytes(&note).unwrap();
    let (verified, _) = note.verify(&known).unwrap();
    assert_eq!(verified[0].name(), origin);
    let checkpoint = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
    assert_eq!(
        (checkpoint.origin(), checkpoint.size()),
        (origin.as_str(), EVENTS)
    );
    let root = Hash(checkpoint.hash().0);

    // Every tile of the checkpoint's tree, with the spec's headers.
    let mut fetched = HashMap::new();
    for tile in tiles_of(EVENTS) {
        let (status, content_type, cache, bytes) =
            get(&server, "app-audit", &tile.path(), Some(AUDITOR)).await;
        assert_eq!(status, StatusCode::OK, "{tile}");
        assert_eq!(content_type, "application/octet-stream");
        let expected_cache = if tile.is_full() {
            "private, max-age=31536000, immutable"
        } else {
            "private, max-age=60"
        };
        assert_eq!(cache, expected_cache, "{tile}");
        assert_eq!(bytes.len(), usize::from(tile.width()) * 32);
        fetched.insert(tile.path(), bytes);
    }

    // Authenticated by the test's own hashing: leaves to the signed root, level 1 from the
    // full level-0 tiles.
    let leaves: Vec<tlog_tiles::Hash> = tiles_of(EVENTS)
        .filter(|t| t.level() == 0)
        .flat_map(|t| fetched[&t.path()].clone())
        .collect::<Vec<u8>>()
        .chunks(32)
        .map(|h| tlog_tiles::Hash(h.try_into().unwrap()))
        .collect();
    assert_eq!(mth(&leaves).0, root.0);
    let level_1 = &fetched["tile/1/000.p/3"];
    for (i, hash) in (0u64..).zip(level_1.chunks(32)) {
        let below = TileId::new(0, i, 256).unwrap();
        assert_eq!(Tile::subtree_hash(&fetched[&below.path()]).0, hash);
    }

    // Entry bundles: each entry is the event's leaf bytes and hashes to its tile hash.
    for tile in tiles_of(EVENTS).filter(|t| t.level() == 0) {
        let path = &tile.entries_path().unwrap();
        let (status, _, cache, bundle) = get(&server, "app-audit", path, Some(AUDITOR)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(cache.contains("immutable"), tile.is_full());
        let entries = parse_entry_bundle(&bundle).unwrap();
        let hashes = &fetched[&tile.path()];
        for ((offset, entry), hash) in (tile.index() * 256..).zip(&entries).zip(hashes.chunks(32)) {
            assert_eq!(*entry, event_leaf_bytes(offset, &payload(offset)));
            assert_eq!(tlog_tiles::record_hash(entry).0, hash);
        }
    }

    // Inclusion proofs built by tlog_tiles from the fetched tiles, checked by us.
    let reader = Fetched(fetched);
    let hashes = TileHashReader::new(EVENTS, *checkpoint.hash(), &reader);
    for offset in [0, 1, 255, 256, 500, 998, 999] {
        let proof = tlog_tiles::prove_record(EVENTS, offset, &hashes).unwrap();
        let proof: Vec<Hash> = proof.iter().map(|h| Hash(h.0)).collect();
        let leaf = event_leaf_hash(offset, &payload(offset));
        verify_inclusion(&leaf, offset, EVENTS, &proof, &root).unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_tile_requests_get_clear_errors() {
    let server = TestServer::start_signing().await;
    server.create_stream("app-audit").await;
    let payloads: Vec<Vec<u8>> = (0..EVENTS).map(payload).collect();
    append(&server, "app-audit", &payloads).await;
    for (path, token, expected) in [
        ("checkpoint", None, StatusCode::UNAUTHORIZED),
        ("tile/0/000", None, StatusCode::UNAUTHORIZED),
        ("tile/0/000", Some(WRITER), StatusCode::FORBIDDEN),
        ("tile/0/000", Some(ADMIN), StatusCode::OK),
        ("tile/0/x000/001", Some(AUDITOR), StatusCode::BAD_REQUEST),
        ("tile/00/000", Some(AUDITOR), StatusCode::BAD_REQUEST),
        ("tile/0/000.p/0", Some(AUDITOR), StatusCode::BAD_REQUEST),
        ("tile/0/000.p/256", Some(AUDITOR), StatusCode::BAD_REQUEST),
        ("tile/entries/1", Some(AUDITOR), StatusCode::BAD_REQUEST),
        ("tile/0/004", Some(AUDITOR), StatusCode::NOT_FOUND),
        ("tile/0/003.p/233", Some(AUDITOR), StatusCode::NOT_FOUND),
        ("tile/0/003.p/100", Some(AUDITOR), StatusCode::OK),
        ("tile/1/000", Some(AUDITOR), StatusCode::NOT_FOUND),
        ("tile/entries/004", Some(AUDITOR), StatusCode::NOT_FOUND),
        ("tile/", Some(AUDITOR), StatusCode::NOT_FOUND),
    ] {
        let (status, _, _, body) = get(&server, "app-audit", path, token).await;
        assert_eq!(
            status,
            expected,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    // A stream that does not exist is 404 for a key that may read it, 403 for one that
    // may not, so its existence is not told.
    let (status, ..) = get(&server, "app-nothing", "tile/0/000", Some(AUDITOR)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, ..) = get(&server, "app-nothing", "checkpoint", Some(WRITER)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    server.stop().await;
}

/// An event whose leaf bytes pass 65,535 bytes: its bundle is 422 naming the offset; the
/// bundle before it, its tile and the checkpoint are served.
#[tokio::test]
async fn a_bundle_holding_an_event_too_large_for_it_is_refused_by_name() {
    let server = TestServer::start_signing().await;
    server.create_stream("app-big").await;
    append(
        &server,
        "app-big",
        &[b"small".to_vec(), vec![b'a'; 65_518], vec![b'b'; 65_519]],
    )
    .await;
    let (status, content_type, _, body) =
        get(&server, "app-big", "tile/entries/000.p/3", Some(AUDITOR)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(content_type.starts_with("application/json"));
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["kind"], "entry_too_large");
    assert_eq!(error["error"]["offset"], 2);
    assert_eq!(error["error"]["stream"], "app-big");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("offset 2") && message.contains("65536 bytes"),
        "{message}"
    );
    for path in ["tile/entries/000.p/2", "tile/0/000.p/3", "checkpoint"] {
        let (status, ..) = get(&server, "app-big", path, Some(AUDITOR)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    server.stop().await;
}
