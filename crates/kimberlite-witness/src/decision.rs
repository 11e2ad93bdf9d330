//! The witness's decision on one `add-checkpoint` request: pure, a table of the spec's
//! answers (`c2sp.org/tlog-witness`), checked in this order:
//!
//! | # | condition                                                   | answer |
//! |---|-------------------------------------------------------------|--------|
//! | 1 | the body is not a request (or its checkpoint text malformed)| 400    |
//! | 2 | the checkpoint's origin is not a configured log             | 404    |
//! | 3 | no signature by the log's configured key verifies           | 403    |
//! | 4 | old size above the checkpoint's size                        | 400    |
//! | 5 | old size is not the size the witness last cosigned (0 if never) | 409, body: that size |
//! | 6 | old size = checkpoint size, root not the one last cosigned  | 409, body: that size |
//! | 7 | the consistency proof does not verify (non-empty from 0 too)| 422    |
//! | 8 | otherwise                                                   | cosign, remember (size, root) |
//!
//! So a rollback (a smaller tree) is refused at 4 or 5 and a fork (another tree under the
//! same key) at 6 or 7: once a witness cosigned a branch, it cosigns no other.

use std::collections::BTreeMap;

use kimberlite_proof::{
    empty_root, split_note, verify_consistency, AddCheckpoint, Checkpoint, Hash, VerifierKey,
};

/// What a witness remembers of one log: the last checkpoint it cosigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cosigned {
    /// Its tree size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
}

/// Why a request was refused; each maps to the spec's status code ([`Refusal::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Row 1 or 4: not a request the spec allows.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Row 2: no log with this origin is configured.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// Row 3: no signature by the log's configured key verifies.
    #[error("the checkpoint is not signed by the configured key of {0:?}")]
    BadLogSignature(String),
    /// Rows 5 and 6: the request does not start from what the witness last cosigned.
    #[error("the witness last cosigned size {witness_size} of this log: {reason}")]
    Conflict {
        /// The size the witness last cosigned (0 if never).
        witness_size: u64,
        /// Why.
        reason: &'static str,
    },
    /// Row 7: the consistency proof does not verify.
    #[error("the consistency proof does not verify: {0}")]
    BadProof(String),
}

impl Refusal {
    /// The HTTP status code the spec gives this refusal.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::UnknownOrigin(_) => 404,
            Self::BadLogSignature(_) => 403,
            Self::Conflict { .. } => 409,
            Self::BadProof(_) => 422,
        }
    }
}

/// A request the witness accepts: cosign `text`, then remember `cosigned` for `origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The log's origin.
    pub origin: String,
    /// The checkpoint text to cosign: re-encoded from what was parsed, not the bytes sent.
    pub text: String,
    /// The new state of the log.
    pub cosigned: Cosigned,
}

/// Decides a request body against the configured logs and what the witness last cosigned.
/// `state` gives, for an origin, the last cosigned checkpoint (`None` if never).
pub fn decide(
    body: &[u8],
    logs: &BTreeMap<String, VerifierKey>,
    state: impl Fn(&str) -> Option<Cosigned>,
) -> Result<Accepted, Refusal> {
    let bad = |reason: String| Refusal::BadRequest(reason);
    let body = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8".into()))?;
    let request = AddCheckpoint::parse(body).map_err(|e| bad(e.to_string()))?;
    let (text, _) = split_note(&request.checkpoint).map_err(|e| bad(e.to_string()))?;
    let checkpoint = Checkpoint::parse(text).map_err(|e| bad(e.to_string()))?;
    let origin = checkpoint.origin.clone();
    let key = logs
        .get(&origin)
        .ok_or_else(|| Refusal::UnknownOrigin(origin.clone()))?;
    // The log's key signs under its own name or under the origin (C2SP: the key name is the
    // origin), as `kimberlite checkpoint` and `kimberlite serve` sign.
    Checkpoint::open_by_log(&request.checkpoint, key)
        .map_err(|_| Refusal::BadLogSignature(origin.clone()))?;
    let reencoded = checkpoint.to_text();
    if reencoded != text {
        return Err(bad("the checkpoint text is not in canonical form".into()));
    }
    let size = checkpoint.tree_size;
    if request.old_size > size {
        return Err(bad(format!(
            "old size {} is above the checkpoint's size {size}",
            request.old_size
        )));
    }
    let last = state(&origin);
    let witness_size = last.map_or(0, |last| last.size);
    if request.old_size != witness_size {
        return Err(Refusal::Conflict {
            witness_size,
            reason: "the request's old size is another",
        });
    }
    check_extends(last, &checkpoint, &request.proof)?;
    Ok(Accepted {
        origin,
        text: reencoded,
        cosigned: Cosigned {
            size,
            root: checkpoint.root,
        },
    })
}

/// Rows 6 and 7: `checkpoint` extends `last` (or the empty tree) by `proof`.
fn check_extends(
    last: Option<Cosigned>,
    checkpoint: &Checkpoint,
    proof: &[Hash],
) -> Result<(), Refusal> {
    let (old_size, old_root) = last.map_or((0, empty_root()), |last| (last.size, last.root));
    if old_size == checkpoint.tree_size && checkpoint.root != old_root {
        return Err(Refusal::Conflict {
            witness_size: old_size,
            reason: "same size, another root: a fork",
        });
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(Refusal::BadProof(
                "the proof from size 0 must be empty".into(),
            ));
        }
        return Ok(());
    }
    verify_consistency(
        old_size,
        checkpoint.tree_size,
        &old_root,
        &checkpoint.root,
        proof,
    )
    .map_err(|e| Refusal::BadProof(e.to_string()))
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
