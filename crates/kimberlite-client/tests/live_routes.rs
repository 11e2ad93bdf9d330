//! Tail, long poll, verify, proofs and checkpoints through the client, end to end against the
//! real server.

mod common;

use std::time::Duration;

use common::{TestServer, ADMIN};
use kimberlite_client::{Client, ErrorKind};

fn with_events(server: &TestServer, stream: &str, count: u64) -> Client {
    let client = server.client(ADMIN);
    client.create_stream(stream).unwrap();
    let events: Vec<String> = (0..count).map(|i| format!("event {i}")).collect();
    client.append(stream, &events, Some(0)).unwrap();
    client
}

#[test]
fn tail_follows_events_appended_after_it_started() {
    let server = TestServer::start();
    let client = with_events(&server, "app-tail", 3);
    let follower = client.clone();
    let tail = std::thread::spawn(move || {
        follower
            .tail("app-tail", 1)
            .unwrap()
            .take(4)
            .map(|event| event.unwrap().offset)
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(200));
    client
        .append("app-tail", &["late 1", "late 2"], Some(3))
        .unwrap();
    assert_eq!(tail.join().unwrap(), [1, 2, 3, 4]);
}

#[test]
fn a_long_poll_answers_when_an_event_arrives() {
    let server = TestServer::start();
    let client = with_events(&server, "app-poll", 2);
    let poller = client.clone();
    let poll = std::thread::spawn(move || {
        poller
            .read_wait("app-poll", 2, None, Duration::from_secs(10))
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    client.append("app-poll", &["news"], Some(2)).unwrap();
    let page = poll.join().unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].text(), Some("news"));
}

#[test]
fn verify_reports_an_intact_stream_and_its_head() {
    let server = TestServer::start();
    let client = with_events(&server, "app-verify", 4);
    let report = client.verify("app-verify").unwrap();
    assert!(report.intact, "{:?}", report.raw);
    assert_eq!(report.records_checked, 4);
    assert_eq!(report.head, client.stream("app-verify").unwrap().head);
    assert!(report.problems.is_empty());
}

#[test]
fn proofs_name_the_event_and_the_tree() {
    let server = TestServer::start();
    let client = with_events(&server, "app-proofs", 5);
    let bundle = client.inclusion_proof("app-proofs", 3, None).unwrap();
    assert_eq!((bundle.offset, bundle.tree_size), (3, 5));
    let bundle = client.inclusion_proof("app-proofs", 3, Some(4)).unwrap();
    assert_eq!(bundle.tree_size, 4);
    let consistency = client.consistency_proof("app-proofs", 2, 5).unwrap();
    assert_eq!((consistency.old_size, consistency.new_size), (2, 5));
    let beyond = client.inclusion_proof("app-proofs", 9, None).unwrap_err();
    assert!(beyond.api().is_some(), "{beyond}");
}

#[test]
fn a_server_without_a_signing_key_says_so() {
    let server = TestServer::start();
    let client = with_events(&server, "app-cp", 1);
    let refused = client.checkpoint("app-cp").unwrap_err();
    assert_eq!(refused.kind(), Some(&ErrorKind::NotFound), "{refused}");
    // The route answers (the router's fallback would say "no such route").
    assert!(!refused.to_string().contains("no such route"), "{refused}");
}

#[test]
fn receipts_and_tiles_through_the_client() {
    let server = TestServer::start();
    let client = with_events(&server, "app-tiles", 3);
    // No signing key and nothing cosigned: a clear 404 saying how to get receipts.
    let refused = client.receipt("app-tiles", 1).unwrap_err();
    assert_eq!(refused.kind(), Some(&ErrorKind::NotFound), "{refused}");
    assert!(refused.to_string().contains("--signing-key"), "{refused}");
    // A client on the stream's tiles prefix reads its tiles.
    let tiles = Client::builder(&format!("{}/v1/streams/app-tiles/tlog/", server.url()))
        .token(ADMIN)
        .build()
        .unwrap();
    let tile = kimberlite_proof::tile_in_tree(0, 0, 3).unwrap();
    let bytes = tiles.tlog_tile(tile).unwrap();
    assert_eq!(bytes.len(), 96);
    assert_eq!(
        &bytes[32..64],
        kimberlite_proof::event_leaf_hash(1, b"event 1").as_bytes()
    );
    let beyond = kimberlite_proof::tile_in_tree(0, 0, 4).unwrap();
    assert!(tiles.tlog_tile(beyond).is_err());
    // The server signs no checkpoints: its tiles checkpoint is a 404 too.
    let refused = tiles.tlog_checkpoint().unwrap_err();
    assert_eq!(refused.kind(), Some(&ErrorKind::NotFound), "{refused}");
}
