//! A C2SP transparency log witness (`c2sp.org/tlog-witness`): for each log it is configured
//! with (origin and verifier key), it cosigns a checkpoint only if the log signed it and it
//! extends the last checkpoint of that log the witness cosigned, so that no log, nor anyone
//! with its key, can show two histories both cosigned by this witness.
//!
//! - [`decision`]: the pure decision on a request, a table of the spec's answers.
//! - [`state`]: configured logs and cosigned checkpoints, kept in a Kimberlite store.
//! - [`witness`]: [`Witness`], deciding, recording, then cosigning under one lock.
//! - [`http`]: `POST /add-checkpoint` over axum.
//!
//! Cosignatures are Ed25519 `cosignature/v1` ([`kimberlite_proof::cosignature`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod decision;
pub mod http;
pub mod state;
pub mod witness;

pub use decision::{decide, Accepted, Cosigned, Refusal};
pub use http::{router, serve, BODY_BYTES_MAX, REQUESTS_IN_FLIGHT_MAX, REQUEST_TIMEOUT_MS};
pub use state::{LogEntry, StateError, WitnessState, COSIGNED_STREAM, LOGS_STREAM};
pub use witness::{Answer, Witness};
