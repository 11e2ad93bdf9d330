//! The HTTP transport alone: the bound the server benches print beside their `RESULT`.
//!
//! A minimal hyper HTTP/1.1 server on a runtime built as [`crate::server::BenchServer`]'s
//! (tokio's multi-thread runtime, one worker per core, the clients as tasks on it), each
//! connection kept alive and `TCP_NODELAY`, whose handler reads the request's whole body and
//! answers a fixed 200 with a body of a given size (the size of the append answer the real
//! server gave). No store, no router, no authentication, no access log, no limits, no
//! timers: whatever a server built on hyper's HTTP/1.1 must do for each request, and nothing
//! it may skip. The same clients ([`crate::http_client`]) time it as they time the server,
//! so its events per second against the embedded store's bound what any design serving those
//! clients over HTTP/1.1 with hyper can reach on this machine (`docs/PERFORMANCE.md`,
//! section "Why the unmet targets are not met").

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// The transport-only server, stopped on drop.
pub struct FloorServer {
    addr: SocketAddr,
    runtime: Runtime,
    accept: JoinHandle<()>,
}

impl FloorServer {
    /// Starts the server on 127.0.0.1 (a port the system picks), answering every request with
    /// 200 and `answer_bytes` bytes of body, on a runtime of its own (one worker per core).
    ///
    /// # Panics
    ///
    /// Panics if the runtime cannot start or the address cannot be bound.
    #[must_use]
    pub fn start(answer_bytes: usize) -> Self {
        let answer = Bytes::from(vec![b'0'; answer_bytes]);
        Self::serve(move |request: Request<Incoming>| {
            let answer = answer.clone();
            async move {
                // The whole body, as a handler that appends it must have it.
                let _ = request.into_body().collect().await;
                Response::new(Full::new(answer))
            }
        })
    }

    /// Starts a bare hyper HTTP/1.1 server on 127.0.0.1 whose every request `handler`
    /// answers, on a runtime of its own (one worker per core); the transport of every floor.
    ///
    /// # Panics
    ///
    /// Panics if the runtime cannot start or the address cannot be bound.
    pub(crate) fn serve<H, F>(handler: H) -> Self
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("start the floor runtime");
        let listener = runtime
            .block_on(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
            .expect("bind the floor server");
        let addr = listener.local_addr().expect("the floor server's address");
        let accept = runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let answer = handler(request);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            runtime,
            accept,
        }
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The runtime the server (and the clients timing it) run on.
    #[must_use]
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

impl Drop for FloorServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrent::single_appends;
    use crate::http_client::{connect_all, length_prefixed};

    #[test]
    fn the_floor_answers_every_request_with_the_given_body_size() {
        let floor = FloorServer::start(97);
        let mut clients = connect_all(floor.runtime(), floor.addr(), "s", 3);
        let round = single_appends(floor.runtime(), &mut clients, 4);
        assert_eq!(round.latencies.len(), 12);
        let batch = length_prefixed(&crate::events(0, 1_000));
        floor.runtime().block_on(clients[0].append_batch(batch));
        assert_eq!(clients[0].answer_body_len(), 97);
    }
}
