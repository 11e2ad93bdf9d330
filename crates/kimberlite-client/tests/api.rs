//! The client end to end against a real server on loopback: streams, appends in each
//! encoding with expected offsets, conflicts, paged reads and the page iterator, and the
//! typed errors of refused requests.

mod common;

use common::{TestServer, ADMIN, AUDITOR, WRITER};
use kimberlite_client::{Client, ClientError, Encoding, ErrorKind};
use kimberlite_server::Limits;

#[test]
fn streams_are_created_listed_and_shown() {
    let server = TestServer::start();
    let admin = server.client(ADMIN);
    admin.healthz().unwrap();
    let created = admin.create_stream("app-ehr").unwrap();
    assert_eq!((created.name.as_str(), created.next_offset), ("app-ehr", 0));
    assert_eq!(created.head, None);
    admin.create_stream("billing").unwrap();
    let exists = admin.create_stream("app-ehr").unwrap_err();
    assert_eq!(exists.kind(), Some(&ErrorKind::Conflict));
    assert_eq!(
        exists.api().and_then(|error| error.stream.as_deref()),
        Some("app-ehr")
    );
    let names: Vec<String> = admin
        .list_streams()
        .unwrap()
        .into_iter()
        .map(|stream| stream.name)
        .collect();
    // The admin may read the server's own access log too.
    assert_eq!(names, ["_access", "app-ehr", "billing"]);
    // The writer sees only what it may append to.
    let names: Vec<String> = server
        .client(WRITER)
        .list_streams()
        .unwrap()
        .into_iter()
        .map(|stream| stream.name)
        .collect();
    assert_eq!(names, ["app-ehr"]);
    let missing = admin.stream("nope").unwrap_err();
    assert_eq!(missing.kind(), Some(&ErrorKind::NotFound));
}

#[test]
fn each_encoding_appends_the_exact_bytes_and_reads_them_back() {
    let server = TestServer::start();
    server.client(ADMIN).create_stream("app-ehr").unwrap();
    let writer = server.client(WRITER);
    let first = writer
        .append_as(
            "app-ehr",
            Encoding::Json,
            &["viewed P-1", "{\"a\":1}"],
            Some(0),
        )
        .unwrap();
    assert_eq!((first.first_offset, first.next_offset), (0, 2));
    assert_eq!(first.head.len(), 64);
    let second = writer
        .append_as(
            "app-ehr",
            Encoding::NdJson,
            &["line three", "caf\u{e9}"],
            Some(2),
        )
        .unwrap();
    assert_eq!((second.first_offset, second.next_offset), (2, 4));
    let binary: [&[u8]; 3] = [b"\xff\x00binary", b"", b"two\nlines"];
    let third = writer.append("app-ehr", &binary, None).unwrap();
    assert_eq!((third.first_offset, third.next_offset), (4, 7));

    let auditor = server.client(AUDITOR);
    let shown = auditor.stream("app-ehr").unwrap();
    assert_eq!(shown.next_offset, 7);
    assert_eq!(shown.head.as_deref(), Some(third.head.as_str()));
    let events: Vec<Vec<u8>> = auditor
        .events("app-ehr", 0)
        .map(|event| event.unwrap().payload)
        .collect();
    let expected: Vec<&[u8]> = vec![
        b"viewed P-1",
        b"{\"a\":1}",
        b"line three",
        "caf\u{e9}".as_bytes(),
        b"\xff\x00binary",
        b"",
        b"two\nlines",
    ];
    assert_eq!(events, expected);
}

#[test]
fn a_conflict_names_the_next_offset_and_writes_nothing() {
    let server = TestServer::start();
    let admin = server.client(ADMIN);
    admin.create_stream("app-x").unwrap();
    admin.append("app-x", &["a", "b", "c"], Some(0)).unwrap();
    let conflict = admin.append("app-x", &["late"], Some(1)).unwrap_err();
    assert_eq!(conflict.kind(), Some(&ErrorKind::Conflict));
    assert_eq!(conflict.conflict_next_offset(), Some(3));
    let api = conflict.api().unwrap();
    assert_eq!((api.status, api.stream.as_deref()), (409, Some("app-x")));
    assert_eq!(admin.stream("app-x").unwrap().next_offset, 3);
    // Retrying from the offset the conflict gave succeeds.
    let retried = admin.append("app-x", &["late"], Some(3)).unwrap();
    assert_eq!(retried.first_offset, 3);
}

#[test]
fn reads_page_and_the_iterator_walks_every_page() {
    let limits = Limits {
        max_read_page_events: 3,
        ..Limits::default()
    };
    let server = TestServer::start_with(limits);
    let admin = server.client(ADMIN);
    admin.create_stream("app-pages").unwrap();
    let events: Vec<String> = (0..10).map(|i| format!("event {i}")).collect();
    admin.append("app-pages", &events, Some(0)).unwrap();

    let page = admin.read("app-pages", 2, Some(100)).unwrap();
    let offsets: Vec<u64> = page.events.iter().map(|event| event.offset).collect();
    assert_eq!(offsets, [2, 3, 4], "the server caps the page");
    assert_eq!((page.next_offset, page.end_offset), (5, 10));
    assert!(!page.is_last());
    let page = admin.read("app-pages", 9, Some(2)).unwrap();
    assert_eq!(page.events.len(), 1);
    assert!(page.is_last());
    let past = admin.read("app-pages", 50, None).unwrap();
    assert!(past.events.is_empty() && past.is_last());

    let mut all = admin.events("app-pages", 1);
    let read: Vec<String> = all
        .by_ref()
        .map(|event| event.unwrap().text().unwrap().to_owned())
        .collect();
    assert_eq!(read, events[1..]);
    assert_eq!(all.next_offset(), 10);
    assert_eq!(admin.events("app-pages", 10).count(), 0);
    // A limit asks for no more than it wants: 4 events from 1 are a page of 3 (the server's
    // cap) and a page of 1, so the next page would start at 5.
    let mut four = admin.events("app-pages", 1).limit(4);
    let offsets: Vec<u64> = four.by_ref().map(|event| event.unwrap().offset).collect();
    assert_eq!(offsets, [1, 2, 3, 4]);
    assert_eq!(four.next_offset(), 5);
    assert_eq!(admin.events("app-pages", 0).limit(0).count(), 0);
}

#[test]
fn refusals_are_typed_and_name_what_was_refused() {
    let server = TestServer::start();
    server.client(ADMIN).create_stream("billing").unwrap();
    let anonymous = Client::builder(&server.url()).build().unwrap();
    let refused = anonymous.read("billing", 0, None).unwrap_err();
    assert_eq!(refused.kind(), Some(&ErrorKind::Unauthorized));
    let unknown = server
        .client("not-a-key")
        .read("billing", 0, None)
        .unwrap_err();
    assert_eq!(unknown.api().map(|error| error.status), Some(401));

    // An auditor cannot write, a writer cannot read; both said the same way whether the
    // stream exists or not.
    for stream in ["billing", "no-such-stream"] {
        let write = server
            .client(AUDITOR)
            .append(stream, &["x"], None)
            .unwrap_err();
        assert_eq!(write.kind(), Some(&ErrorKind::Forbidden), "{stream}");
        assert_eq!(
            write.api().and_then(|error| error.stream.as_deref()),
            Some(stream)
        );
        let read = server.client(WRITER).read(stream, 0, None).unwrap_err();
        assert_eq!(read.kind(), Some(&ErrorKind::Forbidden), "{stream}");
    }
    let missing = server
        .client(ADMIN)
        .append("no-such-stream", &["x"], None)
        .unwrap_err();
    assert_eq!(missing.kind(), Some(&ErrorKind::NotFound));

    // A name that is a path is one percent-encoded segment, refused by the server's name
    // check; `..` itself is refused before sending.
    let path = server
        .client(ADMIN)
        .read("../billing", 0, None)
        .unwrap_err();
    assert_eq!(path.kind(), Some(&ErrorKind::BadRequest), "{path}");
    assert!(matches!(
        server.client(ADMIN).read("..", 0, None),
        Err(ClientError::InvalidArgument(_))
    ));
    // What an encoding cannot carry is refused before sending: the stream is unchanged.
    let binary: [&[u8]; 1] = [b"\xff"];
    assert!(matches!(
        server
            .client(ADMIN)
            .append_as("billing", Encoding::Json, &binary, None),
        Err(ClientError::Batch(_))
    ));
    assert_eq!(
        server.client(ADMIN).stream("billing").unwrap().next_offset,
        0
    );
}

#[test]
fn an_unreachable_server_is_a_transport_error() {
    let server = TestServer::start();
    let url = server.url();
    drop(server);
    let client = Client::builder(&url).token(ADMIN).build().unwrap();
    assert!(matches!(client.healthz(), Err(ClientError::Transport(_))));
}
