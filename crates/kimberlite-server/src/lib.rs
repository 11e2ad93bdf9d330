//! `kimberlite serve`: the HTTP service over a Kimberlite store.
//!
//! Applications append and read events over HTTP/JSON under `/v1` (described by the OpenAPI
//! document at `/v1/openapi.json`); auditors read, verify and fetch proofs with keys that
//! cannot write. `docs/SERVER.md` covers running it.
//!
//! The facade is small: [`ServerConfig`] says where to listen and what to allow, [`Server`]
//! binds and runs, [`app`] builds the router alone (for tests and embedding). Handlers call
//! the store, which blocks on I/O, on tokio's blocking pool, so a slow disk never stalls the
//! connections the runtime is serving.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

mod access_log;
mod access_writer;
mod activity;
mod api;
mod auth;
mod client_cert;
mod cluster;
mod config;
mod connection;
mod error;
mod finish;
mod follow;
mod keys;
mod lean_append;
mod metrics;
mod metrics_layer;
mod names;
mod openapi;
mod principal;
mod query;
mod router;
mod server;
mod signing;
mod state;
mod tls;
mod touched;
mod utc_time;
mod witnessing;

pub use access_writer::ACCESS_STREAM;
pub use client_cert::ClientCertName;
pub use cluster::{
    log_position, node_state, Cluster, ClusterConfig, ClusterError, HttpTransport, ACCESS_DIR,
    LOG_POSITION_HEADER, REQUEST_ID_HEADER,
};
pub use config::{ConfigError, Limits, ServerConfig};
pub use error::ApiError;
pub use keys::{
    rfc3339, AuthFailure, KeyEntry, KeyFileError, KeyRing, NewKey, KEY_FILE_NAME, TOKEN_PREFIX,
};
/// The replication crate cluster mode runs (its `NodeConfig` is [`ClusterConfig::node`]).
pub use kimberlite_raft;
pub use principal::{Grant, Permission, Principal};
pub use server::{ServeError, Server};
pub use state::AppState;
pub use tls::{crypto_provider, TlsConfig, TlsError};
pub use witnessing::{PolicyError, WitnessPolicies, WitnessingConfig, WitnessingError};

/// The service's router over `state`: every route, limit and layer, without a listener.
pub fn app(state: AppState) -> axum::Router {
    router::router(state)
}
