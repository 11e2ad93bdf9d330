//! The server benches' HTTP client: one HTTP/1.1 keep-alive connection per client,
//! `TCP_NODELAY`, no pool, no TLS, each request written from bytes encoded once per client
//! (only the body and its length change) and its answer read by the client's own task, so
//! that the client's share of a request stays small and the same for every client of every
//! bench. A load generator's client (as `wrk`'s): the server sees an ordinary HTTP/1.1
//! client; its answers are checked (status, `Content-Length`, the whole body read).

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use crate::concurrent::{single_appends, Round, SingleAppender};
use crate::server::TOKEN;

/// Bodies up to this size go out in one `write` with their request's head; larger ones in a
/// second (copying them would cost more than the call).
const ONE_WRITE_MAX: usize = 16 * 1024;

/// `events` as an `application/octet-stream` append body: each a 4-byte big-endian length,
/// then its bytes (the encoding the server decodes without copying).
#[must_use]
pub fn length_prefixed(events: &[Bytes]) -> Bytes {
    let mut body = BytesMut::with_capacity(events.iter().map(|event| event.len() + 4).sum());
    for event in events {
        body.put_u32(u32::try_from(event.len()).expect("an event under 4 GiB"));
        body.put_slice(event);
    }
    body.freeze()
}

/// One client: one keep-alive connection to the server, appending to one stream.
pub struct HttpClient {
    stream: TcpStream,
    /// The request's head up to its `Content-Length` value.
    head: Vec<u8>,
    /// The request being written, reused.
    request: Vec<u8>,
    /// The answer being read, reused.
    answer: Vec<u8>,
    /// The length of the last answer's body.
    body_len: usize,
}

impl HttpClient {
    /// Connects to `addr`, to append to stream `name`.
    ///
    /// # Panics
    ///
    /// Panics if the connection cannot be made.
    pub async fn connect(addr: SocketAddr, name: &str) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the server");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let head = format!(
            "POST /v1/streams/{name}/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer \
             {TOKEN}\r\ncontent-type: application/octet-stream\r\ncontent-length: "
        );
        Self {
            stream,
            head: head.into_bytes(),
            request: Vec::with_capacity(1024),
            answer: Vec::with_capacity(1024),
            body_len: 0,
        }
    }

    /// Appends the length-prefixed `body` ([`length_prefixed`]); returns once the server
    /// answered that the batch is durable.
    ///
    /// # Panics
    ///
    /// Panics if the connection fails or the server answers anything but success.
    pub async fn append(&mut self, body: &[u8]) {
        self.request.clear();
        self.request.extend_from_slice(&self.head);
        self.request
            .extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        if body.len() <= ONE_WRITE_MAX {
            self.request.extend_from_slice(body);
            self.stream.write_all(&self.request).await.expect("send");
        } else {
            self.stream.write_all(&self.request).await.expect("send");
            self.stream.write_all(body).await.expect("send");
        }
        let (status, end) = self.read_answer().await;
        assert!(
            (200..300).contains(&status),
            "append answered {status}: {}",
            String::from_utf8_lossy(&self.answer[..end])
        );
    }

    /// Reads one answer; returns its status and its length in `self.answer`.
    async fn read_answer(&mut self) -> (u16, usize) {
        self.answer.clear();
        let head_end = loop {
            if let Some(at) = find(&self.answer, b"\r\n\r\n") {
                break at + 4;
            }
            self.read_more().await;
        };
        let head = String::from_utf8_lossy(&self.answer[..head_end]).to_ascii_lowercase();
        let status = head
            .strip_prefix("http/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .expect("an HTTP/1.1 status line");
        let length: usize = head
            .split("\r\n")
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .expect("a Content-Length");
        while self.answer.len() < head_end + length {
            self.read_more().await;
        }
        assert_eq!(
            self.answer.len(),
            head_end + length,
            "one request in flight, one answer"
        );
        self.body_len = length;
        (status, head_end + length)
    }

    async fn read_more(&mut self) {
        self.answer.reserve(4096);
        let read = self.stream.read_buf(&mut self.answer).await.expect("read");
        assert!(read > 0, "the server closed the connection");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A client appending to one stream, a request per event ([`crate::concurrent`]).
pub struct HttpStream {
    client: HttpClient,
}

impl SingleAppender for HttpStream {
    async fn append_one(&mut self, event: Bytes) {
        self.client.append(&length_prefixed(&[event])).await;
    }
}

/// A server (or cluster) and the clients connected to it, which it must outlive: the fields
/// drop in order, the clients before the server.
pub struct Connected<S> {
    /// The clients, each with its own connection.
    pub clients: Vec<HttpStream>,
    /// What they are connected to.
    pub server: S,
    /// The runtime of `server`, where the clients' requests run.
    runtime: fn(&S) -> &Runtime,
}

impl<S> Connected<S> {
    /// `count` clients of `server` (whose runtime `runtime` gives), connected to `addr`, each
    /// appending to stream `name`.
    #[must_use]
    pub fn new(
        server: S,
        runtime: fn(&S) -> &Runtime,
        addr: SocketAddr,
        name: &str,
        count: usize,
    ) -> Self {
        let clients = connect_all(runtime(&server), addr, name, count);
        Self {
            clients,
            server,
            runtime,
        }
    }

    /// A round of [`single_appends`]: every client appends `per_client` single events at once.
    pub fn round(&mut self, per_client: u64) -> Round {
        single_appends((self.runtime)(&self.server), &mut self.clients, per_client)
    }
}

/// `count` clients connected to `addr`, each appending to stream `name`.
#[must_use]
pub fn connect_all(
    runtime: &Runtime,
    addr: SocketAddr,
    name: &str,
    count: usize,
) -> Vec<HttpStream> {
    runtime.block_on(async {
        let mut clients = Vec::with_capacity(count);
        for _ in 0..count {
            clients.push(HttpStream {
                client: HttpClient::connect(addr, name).await,
            });
        }
        clients
    })
}

impl HttpStream {
    /// Appends the length-prefixed batch `body` ([`length_prefixed`]) to the client's stream.
    pub async fn append_batch(&mut self, body: Bytes) {
        self.client.append(&body).await;
    }

    /// The length of the body of the last answer the client read (0 before any).
    #[must_use]
    pub fn answer_body_len(&self) -> usize {
        self.client.body_len
    }
}

/// A server the bench's clients post to: where it listens and the runtime they run on.
pub trait Served {
    /// The address a client connects to (a cluster's leader).
    fn addr(&self) -> SocketAddr;
    /// The runtime the server and its clients run on.
    fn runtime(&self) -> &Runtime;
}

impl Served for crate::server::BenchServer {
    fn addr(&self) -> SocketAddr {
        Self::addr(self)
    }
    fn runtime(&self) -> &Runtime {
        Self::runtime(self)
    }
}

impl Served for crate::http_floor::FloorServer {
    fn addr(&self) -> SocketAddr {
        Self::addr(self)
    }
    fn runtime(&self) -> &Runtime {
        Self::runtime(self)
    }
}

impl Served for crate::store_floor::StoreFloorServer {
    fn addr(&self) -> SocketAddr {
        Self::addr(self)
    }
    fn runtime(&self) -> &Runtime {
        Self::runtime(self)
    }
}

impl Served for crate::cluster_http::HttpCluster {
    fn addr(&self) -> SocketAddr {
        self.leader()
    }
    fn runtime(&self) -> &Runtime {
        Self::runtime(self)
    }
}

/// One client posting one body, again and again, to a server's stream: the batch benches'
/// sides. (Fields drop in order: the client goes before the server it is connected to.)
pub struct Poster<S: Served> {
    client: HttpStream,
    body: Bytes,
    server: S,
}

impl<S: Served> Poster<S> {
    /// A client of `server`'s stream `stream`, connected, that will post `body`.
    ///
    /// # Panics
    ///
    /// Panics if the client cannot connect.
    #[must_use]
    pub fn new(server: S, stream: &str, body: Bytes) -> Self {
        let client = connect_all(server.runtime(), server.addr(), stream, 1)
            .pop()
            .expect("one client");
        Self {
            client,
            body,
            server,
        }
    }

    /// Posts the body and waits for the answer (a refusal panics: [`HttpStream`]).
    pub fn post(&mut self) {
        let body = self.body.clone();
        self.server
            .runtime()
            .block_on(self.client.append_batch(body));
    }

    /// The body posted.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The length of the last answer's body (0 before any).
    #[must_use]
    pub fn answer_body_len(&self) -> usize {
        self.client.answer_body_len()
    }

    /// The server posted to.
    #[must_use]
    pub fn server(&self) -> &S {
        &self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixed_bodies() {
        let body = length_prefixed(&[Bytes::from("ab"), Bytes::new()]);
        assert_eq!(&body[..], b"\0\0\0\x02ab\0\0\0\0");
    }

    #[test]
    fn answers_are_read_whole_and_refusals_panic() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server =
            crate::server::BenchServer::start(crate::server::open_store(dir.path(), &["s".into()]));
        let mut clients = connect_all(server.runtime(), server.addr(), "s", 1);
        let body = length_prefixed(&crate::events(0, 3));
        for _ in 0..3 {
            server
                .runtime()
                .block_on(clients[0].append_batch(body.clone()));
        }
        // A stream that does not exist: 404, which the client refuses loudly.
        let mut missing = connect_all(server.runtime(), server.addr(), "nope", 1);
        let refused = server.runtime().block_on(async move {
            tokio::spawn(async move { missing[0].append_batch(body).await }).await
        });
        assert!(refused.is_err_and(|error| error.is_panic()));
    }
}
