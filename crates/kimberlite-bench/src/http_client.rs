//! The server benches' HTTP client: bare hyper, one HTTP/1.1 keep-alive connection per client,
//! `TCP_NODELAY`, no pool, no TLS, so that the client's share of a request stays small and
//! the same for every client of every bench.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use crate::concurrent::SingleAppender;
use crate::server::TOKEN;

/// The append path of stream `name`.
///
/// # Panics
///
/// Panics if `name` does not make a valid path.
#[must_use]
pub fn events_uri(name: &str) -> Uri {
    format!("/v1/streams/{name}/events")
        .parse()
        .expect("a valid append path")
}

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

/// One client: one keep-alive connection to the server.
pub struct HttpClient {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    authorization: HeaderValue,
}

impl HttpClient {
    /// Connects to `addr`; the connection is driven by a task on the current runtime.
    ///
    /// # Panics
    ///
    /// Panics if the connection cannot be made.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the server");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Self {
            sender,
            host: HeaderValue::from_str(&addr.to_string()).expect("a host header"),
            authorization: HeaderValue::from_str(&format!("Bearer {TOKEN}"))
                .expect("an authorization header"),
        }
    }

    /// Appends the length-prefixed `body` at `uri` ([`events_uri`]); returns once the server
    /// answered that the batch is durable.
    ///
    /// # Panics
    ///
    /// Panics if the request fails or the server answers anything but success.
    pub async fn append(&mut self, uri: &Uri, body: Bytes) {
        self.sender.ready().await.expect("the connection is usable");
        let request = Request::post(uri.clone())
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )
            .body(Full::new(body))
            .expect("a valid request");
        let response = self
            .sender
            .send_request(request)
            .await
            .expect("the server answers");
        let status = response.status();
        let answer = response
            .into_body()
            .collect()
            .await
            .expect("the response body")
            .to_bytes();
        assert!(
            status.is_success(),
            "append answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
}

/// A client appending to one stream, a request per event ([`crate::concurrent`]).
pub struct HttpStream {
    client: HttpClient,
    uri: Uri,
}

impl SingleAppender for HttpStream {
    async fn append_one(&mut self, event: Bytes) {
        self.client
            .append(&self.uri, length_prefixed(&[event]))
            .await;
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
                client: HttpClient::connect(addr).await,
                uri: events_uri(name),
            });
        }
        clients
    })
}

impl HttpStream {
    /// Appends the length-prefixed batch `body` ([`length_prefixed`]) to the client's stream.
    pub async fn append_batch(&mut self, body: Bytes) {
        self.client.append(&self.uri, body).await;
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
}
