//! `Witness`: the imperative shell around [`crate::decide`]. One lock covers deciding,
//! recording and signing, so two requests cannot both pass the check against the same old
//! size (the race the spec describes); the cosignature is made only after the new state is
//! synced to the witness's store.

use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use kimberlite_proof::{size_body, WitnessSigner, SIZE_CONTENT_TYPE};

use crate::decision::{decide, Refusal};
use crate::state::{LogEntry, StateError, WitnessState};

/// An answer to `add-checkpoint`: status, content type and body, ready for HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Answer {
    fn text(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

/// A witness: its key and its state.
#[derive(Debug)]
pub struct Witness {
    signer: WitnessSigner,
    state: Mutex<WitnessState>,
}

impl Witness {
    /// A witness signing with `signer` over `state`.
    #[must_use]
    pub fn new(signer: WitnessSigner, state: WitnessState) -> Self {
        Self {
            signer,
            state: Mutex::new(state),
        }
    }

    /// The witness's key.
    #[must_use]
    pub fn signer(&self) -> &WitnessSigner {
        &self.signer
    }

    /// The configured logs and what was last cosigned of each.
    #[must_use]
    pub fn list(&self) -> Vec<LogEntry> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .list()
    }

    /// Answers one `add-checkpoint` body, at the current time.
    pub fn add_checkpoint(&self, body: &[u8]) -> Answer {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        self.add_checkpoint_at(body, now)
    }

    /// Answers one `add-checkpoint` body, cosigning at `timestamp` (POSIX seconds).
    pub fn add_checkpoint_at(&self, body: &[u8], timestamp: u64) -> Answer {
        // A poisoned lock means a panic mid-request; the state itself is only changed after
        // a synced append, so it is still the durable one.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let accepted = match decide(body, state.logs(), |origin| state.cosigned(origin)) {
            Ok(accepted) => accepted,
            Err(refusal) => return refused(&refusal),
        };
        if let Err(error) = state.record(&accepted.origin, accepted.cosigned, timestamp) {
            return failed(&error);
        }
        match self.signer.cosign(&accepted.text, timestamp) {
            Ok(line) => Answer::text(200, line),
            Err(error) => Answer::text(500, format!("cannot cosign: {error}\n")),
        }
    }
}

fn refused(refusal: &Refusal) -> Answer {
    match refusal {
        Refusal::Conflict { witness_size, .. } => Answer {
            status: 409,
            content_type: SIZE_CONTENT_TYPE,
            body: size_body(*witness_size),
        },
        other => Answer::text(other.status(), format!("{other}\n")),
    }
}

fn failed(error: &StateError) -> Answer {
    Answer::text(
        500,
        format!("the witness could not record the checkpoint: {error}\n"),
    )
}
