//! One connection: the TLS handshake (bounded by the header timeout), then HTTP/1.1 or
//! HTTP/2 served by hyper over the router, closed when its client is too slow, when it sits
//! idle, or at shutdown (gracefully, then cut after a bound).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::activity::{Activity, Tracked};
use crate::client_cert::{common_name, ClientCertName};
use crate::config::Limits;
use crate::lean_append::LeanAppend;
use crate::state::AppState;

/// What every connection shares.
#[derive(Clone)]
pub(crate) struct Shared {
    /// Every route ([`crate::router::served_router`]): the connection times and bounds each
    /// request itself ([`crate::router::timed`]).
    pub(crate) router: Router,
    /// `POST /v1/streams/{stream}/events` served before the router, when it can be
    /// ([`LeanAppend`]).
    pub(crate) lean: Arc<LeanAppend>,
    /// For the request metrics and timeout.
    pub(crate) state: AppState,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) limits: Arc<Limits>,
    /// Turns true when the server stops accepting.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Serves the connection `tcp` until it ends, is cut, or the server shuts down.
pub(crate) async fn serve(tcp: TcpStream, shared: Shared) {
    let Some(acceptor) = shared.tls.clone() else {
        serve_http(TokioIo::new(tcp), None, shared).await;
        return;
    };
    let stream = match timeout(shared.limits.header_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake not finished within the header timeout");
            return;
        }
    };
    let name = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| common_name(leaf))
        .map(ClientCertName);
    serve_http(TokioIo::new(stream), name, shared).await;
}

async fn serve_http<I>(io: TokioIo<I>, name: Option<ClientCertName>, shared: Shared)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = Arc::clone(&shared.limits);
    let activity = Activity::new();
    let service = {
        let (router, state) = (shared.router.clone(), shared.state.clone());
        let lean = shared.lean.clone();
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            if let Some(name) = &name {
                request.extensions_mut().insert(name.clone());
            }
            let in_flight = activity.begin();
            let (router, state, lean) = (router.clone(), state.clone(), lean.clone());
            async move {
                let (state_ref, lean_ref) = (&state, &lean);
                let response =
                    crate::router::timed(&state, request.map(Body::new), |request| async move {
                        let request = match lean_ref.take(state_ref, request) {
                            Ok(taken) => return lean_ref.serve(state_ref, taken).await,
                            Err(request) => request,
                        };
                        match router.oneshot(request).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        }
                    })
                    .await;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Tracked::body(body, in_flight)),
                )
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // No read for the end of the stream while a request is in flight: each such read
        // made hyper allocate a fresh read buffer per request while the request's slices of
        // the last one were alive (docs/PERFORMANCE.md, "Design decisions"). A client gone
        // is noticed when its answer is written, and every request is bounded by its timeout.
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(limits.header_timeout);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut shutdown = shared.shutdown.clone();
    // When set, the connection was asked to close gracefully and is cut at this instant.
    let mut cut_at: Option<Instant> = None;
    if *shutdown.borrow_and_update() {
        connection.as_mut().graceful_shutdown();
        cut_at = Some(Instant::now() + limits.shutdown_timeout);
    }
    // One timer, looked at only when it fires: requests starting and ending do not wake the
    // connection (docs/PERFORMANCE.md, "Design decisions"). It never waits past an idle
    // timeout from now, the soonest a request ending now could make the connection idle.
    let next_look = |now: Instant| {
        let soonest = now + limits.idle_timeout;
        activity
            .idle_deadline(limits.header_timeout, limits.idle_timeout)
            .map_or(soonest, |at| at.min(soonest))
    };
    let watchdog = sleep_until(cut_at.unwrap_or_else(|| next_look(Instant::now())));
    tokio::pin!(watchdog);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            changed = shutdown.changed(), if cut_at.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    connection.as_mut().graceful_shutdown();
                    let at = Instant::now() + limits.shutdown_timeout;
                    cut_at = Some(at);
                    watchdog.as_mut().reset(at);
                }
            }
            () = watchdog.as_mut() => {
                let now = Instant::now();
                if let Some(at) = cut_at {
                    if now >= at {
                        tracing::debug!("cutting a connection that did not close in time");
                        return;
                    }
                    watchdog.as_mut().reset(at);
                    continue;
                }
                match activity.idle_deadline(limits.header_timeout, limits.idle_timeout) {
                    Some(at) if at <= now => {
                        tracing::debug!("closing an idle or too slow connection");
                        connection.as_mut().graceful_shutdown();
                        let at = now + limits.header_timeout;
                        cut_at = Some(at);
                        watchdog.as_mut().reset(at);
                    }
                    _ => watchdog.as_mut().reset(next_look(now)),
                }
            }
        }
    }
}
