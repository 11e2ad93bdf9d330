//! `kimberlite-client`: a typed client of the `kimberlite serve` `/v1` API.
//!
//! ```no_run
//! use kimberlite_client::Client;
//!
//! let client = Client::builder("http://127.0.0.1:7070").token("…").build()?;
//! let appended = client.append("ehr-access", &["viewed P-1", "viewed P-2"], Some(0))?;
//! for event in client.events("ehr-access", 0) {
//!     let event = event?;
//!     println!("{} {:?}", event.offset, event.text());
//! }
//! # Ok::<(), kimberlite_client::ClientError>(())
//! ```
//!
//! The API is blocking: the `kimberlite` CLI and scripts are synchronous, and reqwest's
//! blocking client (one background runtime thread) gives HTTP/2, rustls and timeouts without
//! a second API to keep in step. From async code, call it on a blocking thread.
//!
//! Errors are typed: [`ClientError::Api`] carries the server's `kind`, message, stream and
//! offsets; an expected-offset conflict exposes the stream's real next offset
//! ([`ClientError::conflict_next_offset`]). TLS is rustls (ring provider) trusting the
//! system's roots and any CA given ([`ClientBuilder::ca_cert_pem`]), with an optional client
//! certificate ([`ClientBuilder::identity_pem`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

mod batch;
mod builder;
mod client;
mod cluster;
mod error;
mod model;
mod pages;
mod receipt;
mod routing;
mod tail;
mod tlog;

pub use batch::Encoding;
pub use builder::{ClientBuilder, REQUEST_TIMEOUT_DEFAULT, TCP_KEEPALIVE};
pub use client::Client;
pub use cluster::{ClusterStatus, Member};
pub use error::{ApiError, ClientError, ErrorKind};
pub use kimberlite_proof::{ConsistencyBundle, InclusionBundle};
pub use model::{
    Appended, Event, Grant, KeyInfo, NewKey, Page, Permission, Problem, StreamInfo, VerifyReport,
};
pub use pages::Events;
pub use receipt::ServedReceipt;
pub use routing::{RetryPolicy, REQUEST_ID_HEADER};
pub use tail::Tail;
