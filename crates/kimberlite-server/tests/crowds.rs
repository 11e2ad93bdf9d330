//! Connections over real loopback TCP: a thousand at once, and clients that go away in the
//! middle of a request body (no partial batch, and the attempt is still recorded).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestServer, AUDITOR, WRITER};
use kimberlite_server::Limits;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 1_000;

/// Fails with a clear message when the soft limit on open files cannot hold both ends of
/// every connection (the test's own and the server's, in one process).
fn require_open_files(needed: u64) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<u64>().ok());
    if let Some(soft) = soft {
        assert!(
            soft >= needed,
            "this test opens {CONNECTIONS} connections (both ends in this process): raise \
             the open files limit to {needed} or more (`ulimit -n {needed}`), it is {soft}"
        );
    }
}

/// One HTTP/1.1 request on `stream`, `Connection: close`, and the whole answer.
async fn exchange(stream: &mut TcpStream, request: &str) -> std::io::Result<String> {
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn append_request(stream: &str, body: &str) -> String {
    format!(
        "POST /v1/streams/{stream}/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer \
         {WRITER}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n{body}",
        body.len()
    )
}

async fn get_json(server: &TestServer, path: &str) -> Value {
    server.get(path, AUDITOR).await.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_at_once_each_get_their_append_answered() {
    require_open_files(2 * CONNECTIONS as u64 + 200);
    let server = TestServer::start().await;
    server.create_stream("app-load").await;
    let addr = server.addr;
    // Every connection is open before any sends its request.
    let barrier = Arc::new(tokio::sync::Barrier::new(CONNECTIONS));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|client| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await?;
                barrier.wait().await;
                exchange(
                    &mut stream,
                    &append_request("app-load", &format!("[\"e{client}\"]")),
                )
                .await
            })
        })
        .collect();
    let answers = tokio::time::timeout(Duration::from_secs(120), async {
        let mut answers = Vec::new();
        for client in clients {
            answers.push(client.await.unwrap().unwrap());
        }
        answers
    })
    .await
    .expect("a thousand connections answered within the bound");
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }
    let page = get_json(&server, "/v1/streams/app-load/events?limit=1000").await;
    let mut payloads: Vec<String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["payload"].as_str().unwrap().to_owned())
        .collect();
    payloads.sort();
    let mut expected: Vec<String> = (0..CONNECTIONS)
        .map(|client| format!("e{client}"))
        .collect();
    expected.sort();
    assert_eq!(payloads, expected);
    assert_eq!(page["end_offset"], CONNECTIONS);
    server.stop().await;
}

/// Requests whose body is cut by the client going away: a JSON array cut in the middle (with
/// Content-Length), and NDJSON whose first chunk holds two whole events but whose chunked body
/// never ends. Nothing is appended, and each attempt is recorded (400: the body could not be
/// read) even though nobody is left to answer.
#[tokio::test]
async fn a_client_that_disconnects_mid_body_leaves_no_partial_batch() {
    let server = TestServer::start().await;
    server.create_stream("app-cut").await;
    let head = format!(
        "POST /v1/streams/app-cut/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {WRITER}\r\n"
    );
    let cut_requests = [
        format!("{head}Content-Type: application/json\r\nContent-Length: 400\r\n\r\n[\"a\", \"b\", "),
        format!(
            "{head}Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na\nb\n\r\n"
        ),
    ];
    for request in &cut_requests {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stream);
    }
    // The records of both attempts, once the server has seen the bodies end.
    let attempts = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let page = get_json(&server, "/v1/streams/_access/events").await;
            let attempts: Vec<Value> = page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| serde_json::from_str(event["payload"].as_str().unwrap()).unwrap())
                .filter(|record: &Value| record["stream"] == "app-cut" && record["key"] == "writer")
                .collect();
            if attempts.len() == cut_requests.len() {
                return attempts;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both cut requests recorded");
    for attempt in &attempts {
        assert_eq!(attempt["status"], 400, "{attempt}");
        assert_eq!(attempt["kind"], "bad_request", "{attempt}");
        assert!(attempt.get("from").is_none(), "{attempt}");
    }
    let shown = get_json(&server, "/v1/streams/app-cut").await;
    assert_eq!(shown["next_offset"], 0);
    // The connection is usable right after: a whole request goes through.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let answer = exchange(&mut stream, &append_request("app-cut", "[\"whole\"]"))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    server.stop().await;
}

/// A request cut off by the request timeout (408 to the client) still runs to its end on its
/// own task, and its record says what the handler did: here the body never completes, so
/// the handler answers 400 and nothing is appended.
#[tokio::test]
async fn a_request_answered_by_the_timeout_is_still_recorded() {
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = TestServer::start_with(limits).await;
    server.create_stream("app-slow").await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /v1/streams/app-slow/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer \
         {WRITER}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[\"a\", "
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer within the bound")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    drop(stream);
    let record = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let page = get_json(&server, "/v1/streams/_access/events").await;
            let found = page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| serde_json::from_str::<Value>(event["payload"].as_str().unwrap()))
                .filter_map(Result::ok)
                .find(|record| record["stream"] == "app-slow" && record["key"] == "writer");
            if let Some(record) = found {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the timed-out request recorded");
    assert_eq!(record["status"], 400, "{record}");
    let shown = get_json(&server, "/v1/streams/app-slow").await;
    assert_eq!(shown["next_offset"], 0);
    server.stop().await;
}
