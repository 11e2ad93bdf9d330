//! What the server allows: where it listens and the limits every request meets.

use std::net::SocketAddr;
use std::time::Duration;

/// Limits every request meets. Defaults suit one store on one machine; `docs/SERVER.md`
/// lists them with the error each gives.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most events in one append request (413 above).
    pub max_events_per_request: usize,
    /// Most events one read page returns (a larger `limit` is cut to this).
    pub max_read_page_events: usize,
    /// Most bytes of payload one read page returns (the page ends before the event that would
    /// pass it; a single larger event is still returned alone).
    pub max_read_page_bytes: u64,
    /// Time a whole request may take, body included (408 after).
    pub request_timeout: Duration,
    /// Most connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Longest a read's `wait_ms` may wait for a first event (a longer one is cut to this);
    /// keep it below `request_timeout`.
    pub max_read_wait: Duration,
    /// How often an idle tail sends a keep-alive comment; a client gone is noticed at the
    /// next one at the latest.
    pub tail_keep_alive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_events_per_request: 10_000,
            max_read_page_events: 1_000,
            max_read_page_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_connections: 4_096,
            max_read_wait: Duration::from_secs(20),
            tail_keep_alive: Duration::from_secs(15),
        }
    }
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Request limits.
    pub limits: Limits,
}

impl ServerConfig {
    /// A configuration listening on `listen` with default limits.
    #[must_use]
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            limits: Limits::default(),
        }
    }
}
