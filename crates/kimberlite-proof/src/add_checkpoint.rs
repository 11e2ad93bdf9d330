//! The bodies of C2SP tlog-witness's `add-checkpoint` call (`c2sp.org/tlog-witness`): the
//! request a log sends, the 409 body a witness answers with, and the cosignature lines of a
//! 200 answer. Pure: the log side builds requests and reads answers, the witness side the
//! reverse, with the same code.
//!
//! ```text
//! old <size>\n              the size the witness last cosigned (decimal, no leading zeros)
//! <base64 hash>\n           0 to 63 lines: the RFC 6962 consistency proof from <size>
//! \n                        an empty line
//! <signed checkpoint note>  the checkpoint text, a blank line, its signature lines
//! ```
//!
//! A 409 body is `<size>\n` with the content type [`SIZE_CONTENT_TYPE`]; a 200 body is one
//! or more note signature lines (cosignatures).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::hash::Hash;
use crate::note::{parse_signature_line, split_note, NoteError};

/// Most consistency proof lines a request may carry (the spec's bound).
pub const MAX_PROOF_LINES: usize = 63;
/// Content type of a 409 answer's body.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Why an `add-checkpoint` body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddCheckpointError {
    /// The body does not have the request's shape.
    #[error("malformed add-checkpoint body: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The checkpoint note (or a cosignature line) is malformed.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// An `add-checkpoint` request: a signed checkpoint and the proof that it extends the tree
/// of `old_size` the witness last cosigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the last checkpoint the witness cosigned (0 if none).
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size (empty from 0).
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, signature lines included.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// The request body.
    #[must_use]
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&BASE64.encode(hash.0));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint);
        body
    }

    /// Parses a request body. Checks its shape and the note's syntax, not the signatures
    /// nor the proof (the witness does, against its state).
    pub fn parse(body: &str) -> Result<Self, AddCheckpointError> {
        let malformed = |reason| AddCheckpointError::Malformed { reason };
        let (head, checkpoint) = body
            .split_once("\n\n")
            .ok_or(malformed("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines.next().unwrap_or_default();
        let old_size = old
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or(malformed("the first line must be 'old <size>'"))?;
        let proof = lines
            .map(|line| {
                BASE64
                    .decode(line)
                    .ok()
                    .and_then(|bytes| Hash::from_slice(&bytes))
                    .ok_or(malformed("a proof line is not 32 bytes of base64"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(malformed("more than 63 consistency proof lines"));
        }
        split_note(checkpoint)?;
        Ok(Self {
            old_size,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }
}

/// A decimal without leading zeros or sign ("0" alone may start with 0).
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = text == "0" || !text.starts_with('0');
    if !canonical || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The body of a 409 answer: the witness's latest cosigned size.
#[must_use]
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses the body of a 409 answer (`<size>\n`).
pub fn parse_size_body(body: &str) -> Result<u64, AddCheckpointError> {
    body.strip_suffix('\n')
        .and_then(parse_decimal)
        .ok_or(AddCheckpointError::Malformed {
            reason: "a 409 body is '<size>\\n'",
        })
}

/// Appends the cosignature lines of a 200 answer to the checkpoint note they were asked
/// for, after checking each is a note signature line: the result is a note that
/// [`crate::WitnessKey::verify`] and [`crate::WitnessPolicy::check`] read.
pub fn add_cosignatures(note: &str, response: &str) -> Result<String, AddCheckpointError> {
    split_note(note)?;
    if response.is_empty() || !response.ends_with('\n') {
        return Err(AddCheckpointError::Malformed {
            reason: "a 200 body is one or more signature lines, each ending in a newline",
        });
    }
    for line in response.lines() {
        parse_signature_line(line)?;
    }
    let combined = format!("{note}{response}");
    split_note(&combined)?;
    Ok(combined)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "example.com/log\n2\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} example.com/log AAAAAAAA\n";

    #[test]
    fn a_request_roundtrips() {
        let request = AddCheckpoint {
            old_size: 1,
            proof: vec![Hash([1; 32]), Hash([2; 32])],
            checkpoint: NOTE.to_owned(),
        };
        assert_eq!(AddCheckpoint::parse(&request.to_body()).unwrap(), request);
        let empty = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: NOTE.to_owned(),
        };
        assert!(empty.to_body().starts_with("old 0\n\nexample.com/log\n"));
        assert_eq!(AddCheckpoint::parse(&empty.to_body()).unwrap(), empty);
    }

    #[test]
    fn malformed_requests_are_errors() {
        let proof_line = BASE64.encode([0u8; 32]);
        let too_long = format!("old 1\n{}\n{NOTE}", format!("{proof_line}\n").repeat(64));
        for body in [
            String::new(),
            "garbage".to_owned(),
            format!("old 01\n\n{NOTE}"),
            format!("old -1\n\n{NOTE}"),
            format!("old +1\n\n{NOTE}"),
            format!("new 1\n\n{NOTE}"),
            format!("old 1\nAAAA\n\n{NOTE}"),
            "old 1\n\nnot a note\n".to_owned(),
            too_long,
        ] {
            assert!(AddCheckpoint::parse(&body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn size_bodies() {
        assert_eq!(parse_size_body(&size_body(42)).unwrap(), 42);
        for body in ["", "42", "042\n", "x\n", "-1\n"] {
            assert!(parse_size_body(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn cosignatures_are_appended_only_if_they_are_signature_lines() {
        let line = "\u{2014} witness.example/w1 AAAAAAAA\n";
        let note = add_cosignatures(NOTE, line).unwrap();
        assert!(note.ends_with(line));
        for bad in ["", "\u{2014} w AAAAAAAA", "not a line\n", "\n"] {
            assert!(add_cosignatures(NOTE, bad).is_err(), "{bad:?}");
        }
    }
}
