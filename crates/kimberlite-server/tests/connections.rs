//! Connections as the accept loop bounds them: slow and silent clients dropped within the
//! header timeout, the connection limit, and shutdown closing what is open.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use kimberlite_server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits(header_timeout_ms: u64, max_connections: usize) -> Limits {
    Limits {
        header_timeout: Duration::from_millis(header_timeout_ms),
        max_connections,
        ..Limits::default()
    }
}

/// Reads until the server closes the connection (or `bound` passes: then panics), returning
/// what was read and when it closed.
async fn until_closed(stream: &mut TcpStream, bound: Duration) -> (Vec<u8>, Instant) {
    let mut seen = Vec::new();
    let mut buffer = [0_u8; 1024];
    let result = tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "the server kept the connection open past {bound:?}"
    );
    (seen, Instant::now())
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_dropped_within_the_header_timeout() {
    let server = TestServer::start_with(limits(300, 64)).await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // One header line every 50 ms: each byte keeps it alive, the whole head never ends.
    let trickle = tokio::spawn(async move {
        for n in 0..100 {
            if slow
                .write_all(format!("X-{n}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slow
    });
    let mut slow = trickle.await.expect("trickle");
    let (_, closed) = until_closed(&mut slow, Duration::from_secs(5)).await;
    let took = closed - started;
    assert!(took < Duration::from_secs(3), "dropped after {took:?}");
    assert!(took >= Duration::from_millis(250), "dropped after {took:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_says_nothing_is_dropped_within_the_header_timeout() {
    let server = TestServer::start_with(limits(300, 64)).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let (seen, closed) = until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed - started < Duration::from_secs(3));
    assert!(
        seen.is_empty() || seen.starts_with(b"HTTP/1.1 408"),
        "{seen:?}"
    );
    // A prompt client on a fresh connection is still served.
    let ok = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("health");
    assert_eq!(ok.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn an_http2_client_that_opens_no_stream_is_dropped_within_the_header_timeout() {
    let server = TestServer::start_with(limits(300, 64)).await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    // The HTTP/2 preface and an empty SETTINGS frame: a connection, then no request.
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let (seen, closed) = until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(!seen.is_empty(), "the server answered with its SETTINGS");
    assert!(closed - started < Duration::from_secs(3));
    server.stop().await;
}

async fn get_on(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
}

async fn read_response(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut buffer = [0_u8; 1024];
    match tokio::time::timeout(bound, stream.read(&mut buffer)).await {
        Ok(Ok(n)) if n > 0 => Some(buffer[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test]
async fn connections_over_the_limit_wait_until_one_closes() {
    let server = TestServer::start_with(limits(5_000, 2)).await;
    let mut first = TcpStream::connect(server.addr).await.expect("connect");
    let mut second = TcpStream::connect(server.addr).await.expect("connect");
    for stream in [&mut first, &mut second] {
        get_on(stream).await;
        let answer = read_response(stream, Duration::from_secs(5))
            .await
            .expect("served");
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }
    // Both keep their connections (keep-alive); a third waits in the listen queue.
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    get_on(&mut third).await;
    assert_eq!(
        read_response(&mut third, Duration::from_millis(500)).await,
        None,
        "a third connection was served past a limit of two"
    );
    drop(first);
    let answer = read_response(&mut third, Duration::from_secs(5))
        .await
        .expect("served once a slot is free");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    drop(second);
    drop(third);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_stops_accepting() {
    let server = TestServer::start_with(limits(10_000, 64)).await;
    let addr = server.addr;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    get_on(&mut idle).await;
    assert!(read_response(&mut idle, Duration::from_secs(5))
        .await
        .is_some());
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("shutdown does not wait for an idle keep-alive connection");
    let (_, closed) = until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed - started < Duration::from_secs(5));
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

/// Sends the head of an append of `body` to stream `stream`, and the first `sent` bytes of
/// the body.
async fn start_append(
    addr: std::net::SocketAddr,
    stream: &str,
    body: &[u8],
    sent: usize,
) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/streams/{stream}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        common::ADMIN,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp.write_all(&body[..sent])
        .await
        .expect("part of the body");
    tcp
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_what_it_acknowledged_is_durable() {
    let server = TestServer::start_with(limits(10_000, 64)).await;
    assert_eq!(server.create_stream("inflight").await.status(), 201);
    let body = br#"["first", "second"]"#;
    let mut tcp = start_append(server.addr, "inflight", body, 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown did not wait for the request in flight"
    );
    tcp.write_all(&body[5..]).await.expect("rest of the body");
    let answer = read_response(&mut tcp, Duration::from_secs(5))
        .await
        .expect("answered");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let dir = tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stopped")
        .expect("server task");
    let store = kimberlite::Kimberlite::open(dir.path()).expect("reopen");
    let id = store.stream("inflight").expect("stream");
    let events = store
        .read(id, kimberlite::Offset::new(0), 1 << 20)
        .expect("read");
    assert_eq!(events.len(), 2, "the acknowledged batch is durable");
}

#[tokio::test]
async fn shutdown_cuts_a_request_that_never_finishes_after_the_shutdown_timeout() {
    let server = TestServer::start_with(Limits {
        shutdown_timeout: Duration::from_millis(300),
        ..limits(10_000, 64)
    })
    .await;
    assert_eq!(server.create_stream("stuck").await.status(), 201);
    let body = br#"["never", "finished"]"#;
    let mut tcp = start_append(server.addr, "stuck", body, 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let dir = tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("shutdown bounded");
    assert!(started.elapsed() >= Duration::from_millis(250));
    until_closed(&mut tcp, Duration::from_secs(5)).await;
    let store = kimberlite::Kimberlite::open(dir.path()).expect("reopen");
    let id = store.stream("stuck").expect("stream");
    let events = store
        .read(id, kimberlite::Offset::new(0), 1 << 20)
        .expect("read");
    assert!(events.is_empty(), "no partial batch");
}

/// The connection's watchdog looks at its activity only when its timer fires: a request in
/// flight longer than the idle timeout (a long poll) is answered, not cut, and the connection
/// is closed one idle timeout after that answer, not before.
#[tokio::test]
async fn a_long_request_outlives_the_idle_timeout_and_idleness_after_it_closes_the_connection() {
    let idle = Duration::from_millis(400);
    let server = TestServer::start_with(Limits {
        idle_timeout: idle,
        header_timeout: Duration::from_secs(20),
        ..Limits::default()
    })
    .await;
    server.create_stream("app-idle").await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!(
        "GET /v1/streams/app-idle/events?wait_ms=1200 HTTP/1.1\r\nHost: x\r\nAuthorization: \
         Bearer {}\r\n\r\n",
        common::ADMIN
    );
    let asked = Instant::now();
    stream.write_all(request.as_bytes()).await.expect("write");
    let answer = read_response(&mut stream, Duration::from_secs(10))
        .await
        .expect("the long poll is answered");
    let answered = Instant::now();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(
        answered - asked >= Duration::from_millis(1_100),
        "{:?}",
        answered - asked
    );
    let (_, closed) = until_closed(&mut stream, Duration::from_secs(5)).await;
    let idle_for = closed - answered;
    assert!(
        idle_for >= idle - Duration::from_millis(50),
        "closed after {idle_for:?}"
    );
    assert!(
        idle_for < Duration::from_secs(3),
        "closed after {idle_for:?}"
    );
    server.stop().await;
}
