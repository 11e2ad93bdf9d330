//! What a connection is doing: requests in flight (a request counts until its response body
//! is dropped, so a long tail counts as busy), and since when it has been idle.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use tokio::time::Instant;

/// One connection's activity.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    requests_seen: u64,
    idle_since: Instant,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                requests_seen: 0,
                idle_since: Instant::now(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A request started; it ends when the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        {
            let mut state = self.state();
            state.in_flight += 1;
            state.requests_seen += 1;
        }
        InFlight(Arc::clone(self))
    }

    /// When the connection should be closed as idle: `None` while a request is in flight.
    /// Before its first request a connection gets `first_request` (a client that connects
    /// and says nothing is a slow client); after, `idle`.
    pub(crate) fn idle_deadline(&self, first_request: Duration, idle: Duration) -> Option<Instant> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        let allowed = if state.requests_seen == 0 {
            first_request
        } else {
            idle
        };
        Some(state.idle_since + allowed)
    }
}

/// A request in flight; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = self.0.state();
            state.in_flight = state.in_flight.saturating_sub(1);
            state.idle_since = Instant::now();
        }
    }
}

/// A response body that keeps its request in flight until it is done or dropped.
pub(crate) struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl Tracked {
    pub(crate) fn body(inner: Body, in_flight: InFlight) -> Body {
        Body::new(Self {
            inner,
            _in_flight: in_flight,
        })
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
