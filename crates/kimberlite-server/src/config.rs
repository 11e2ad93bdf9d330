//! What the server allows: where it listens, with what TLS, and the limits every request
//! and connection meets.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tls::TlsConfig;

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
    /// Time a client has to finish the TLS handshake, and then each request's headers (an
    /// HTTP/1.1 connection waiting for its next request counts too): a client slower than
    /// this is disconnected, so slow clients cannot hold connections.
    pub header_timeout: Duration,
    /// Time a connection may stay open with no request in flight once it has made one
    /// (HTTP/2 and others hyper's header timer does not cover); then it is closed.
    pub idle_timeout: Duration,
    /// On shutdown, time in-flight requests get to finish before their connections are cut.
    pub shutdown_timeout: Duration,
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
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            max_read_wait: Duration::from_secs(20),
            tail_keep_alive: Duration::from_secs(15),
        }
    }
}

/// Why a configuration is refused before anything listens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Plain HTTP on an address other machines can reach: tokens would cross the network in
    /// the clear.
    #[error(
        "refusing to serve plain HTTP on {0}, which is not a loopback address: tokens would cross \
         the network in the clear. Give --tls-cert and --tls-key, or --insecure-plaintext if \
         something in front of this server terminates TLS"
    )]
    PlaintextNotLoopback(SocketAddr),
    /// A limit that would stop the server from serving.
    #[error("limit {0} must be above zero")]
    ZeroLimit(&'static str),
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Request limits.
    pub limits: Limits,
    /// TLS; `None` serves plain HTTP (loopback only unless `insecure_plaintext`).
    pub tls: Option<TlsConfig>,
    /// Serve plain HTTP on a non-loopback address anyway (TLS terminated in front).
    pub insecure_plaintext: bool,
}

impl ServerConfig {
    /// A configuration listening on `listen` with default limits, without TLS.
    #[must_use]
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            limits: Limits::default(),
            tls: None,
            insecure_plaintext: false,
        }
    }

    /// Checks the configuration: plain HTTP only on loopback unless told otherwise, limits
    /// that let the server serve.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() && !self.insecure_plaintext && !self.listen.ip().is_loopback() {
            return Err(ConfigError::PlaintextNotLoopback(self.listen));
        }
        let limits = &self.limits;
        for (name, zero) in [
            ("max_connections", limits.max_connections == 0),
            ("header_timeout", limits.header_timeout.is_zero()),
            ("idle_timeout", limits.idle_timeout.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        Ok(())
    }
}
