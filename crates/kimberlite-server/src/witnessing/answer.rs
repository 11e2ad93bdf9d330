//! What a witness's answer to `add-checkpoint` comes to (`c2sp.org/tlog-witness`): pure, so
//! every answer the spec defines, and every one it does not, is tested without a network.
//! The table is in the module docs of `witnessing`.

use kimberlite::proof::{add_cosignatures, parse_size_body, WitnessKey, SIZE_CONTENT_TYPE};

/// What one `add-checkpoint` request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 200 with cosignature lines by the policy's key that verify: those lines.
    Cosigned(String),
    /// 200 without a line by the policy's key that verifies (the witness signs with
    /// another key: rotated, or not the witness the policy names).
    BadCosignature,
    /// 409 with the size the witness last cosigned.
    Conflict(u64),
    /// 403: the witness does not take the log's signature.
    Forbidden,
    /// 404: the witness is not configured for the log's origin.
    UnknownLog,
    /// 400: the witness calls the request malformed.
    BadRequest,
    /// 422: the witness says the consistency proof does not verify.
    BadProof,
    /// 408, 429 or a 5xx: the witness cannot answer now.
    Unavailable,
    /// An answer the spec does not define, or a body that is not what the status promises.
    Garbage,
    /// No answer within the request timeout.
    Timeout,
    /// No connection, or the connection broke.
    Unreachable,
}

impl Outcome {
    /// The outcome's label in metrics and logs.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Cosigned(_) => "cosigned",
            Self::BadCosignature => "bad_cosignature",
            Self::Conflict(_) => "conflict",
            Self::Forbidden => "forbidden",
            Self::UnknownLog => "unknown_log",
            Self::BadRequest => "bad_request",
            Self::BadProof => "bad_proof",
            Self::Unavailable => "unavailable",
            Self::Garbage => "garbage",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
        }
    }

    /// Whether asking again later may get another answer. A witness that refuses the log's
    /// key or origin, or cosigns with another key, answers the same until its operator acts.
    pub(crate) fn is_worth_retrying(&self) -> bool {
        !matches!(
            self,
            Self::Cosigned(_) | Self::BadCosignature | Self::Forbidden | Self::UnknownLog
        )
    }
}

/// The outcome of an answer with `status`, `content_type` and `body` from `witness`, asked to
/// cosign the signed checkpoint `note`. Only cosignature lines that verify under the policy's
/// key are kept: a line by another key never reaches the published checkpoint.
pub(crate) fn classify(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    witness: &WitnessKey,
    note: &str,
) -> Outcome {
    match status {
        200 => cosignatures(body, witness, note),
        409 => {
            let sized = content_type.is_some_and(|value| {
                value.split(';').next().map(str::trim) == Some(SIZE_CONTENT_TYPE)
            });
            let size = std::str::from_utf8(body)
                .ok()
                .and_then(|body| parse_size_body(body).ok());
            match size {
                Some(size) if sized => Outcome::Conflict(size),
                _ => Outcome::Garbage,
            }
        }
        400 => Outcome::BadRequest,
        403 => Outcome::Forbidden,
        404 => Outcome::UnknownLog,
        422 => Outcome::BadProof,
        408 | 429 | 500..=599 => Outcome::Unavailable,
        _ => Outcome::Garbage,
    }
}

/// The lines of a 200 body that are `witness`'s valid cosignatures of `note`.
fn cosignatures(body: &[u8], witness: &WitnessKey, note: &str) -> Outcome {
    let Ok(body) = std::str::from_utf8(body) else {
        return Outcome::Garbage;
    };
    if add_cosignatures(note, body).is_err() {
        return Outcome::Garbage;
    }
    let valid: String = body
        .lines()
        .filter(|line| witness.verify(&format!("{note}{line}\n")).is_ok())
        .map(|line| format!("{line}\n"))
        .collect();
    if valid.is_empty() {
        Outcome::BadCosignature
    } else {
        Outcome::Cosigned(valid)
    }
}

#[cfg(test)]
mod tests {
    use kimberlite::proof::{split_note, Checkpoint, SignerKey, WitnessSigner};

    use super::*;

    fn note() -> String {
        let key = SignerKey::from_seed("example.org/log", [1; 32]).unwrap();
        let checkpoint = Checkpoint {
            origin: "example.org/log".into(),
            tree_size: 3,
            root: kimberlite::proof::empty_root(),
            extensions: vec![],
        };
        key.sign(&checkpoint.to_text()).unwrap()
    }

    fn witness(seed: u8) -> WitnessSigner {
        WitnessSigner::from_seed("witness.example/w1", [seed; 32]).unwrap()
    }

    #[test]
    fn every_answer_has_an_outcome_and_only_valid_cosignatures_are_kept() {
        let note = note();
        let key = witness(1).verifier();
        let text = split_note(&note).unwrap().0;
        let good = witness(1).cosign(text, 1_700_000_000).unwrap();
        let rotated = witness(2).cosign(text, 1_700_000_000).unwrap();
        let other = WitnessSigner::from_seed("w9", [9; 32])
            .unwrap()
            .cosign(text, 1)
            .unwrap();
        let size = Some(SIZE_CONTENT_TYPE);
        let cases: Vec<(u16, Option<&str>, String, Outcome)> = vec![
            (200, None, good.clone(), Outcome::Cosigned(good.clone())),
            (
                200,
                None,
                format!("{other}{good}"),
                Outcome::Cosigned(good.clone()),
            ),
            (200, None, rotated.clone(), Outcome::BadCosignature),
            (200, None, other, Outcome::BadCosignature),
            (200, None, "garbage".into(), Outcome::Garbage),
            (200, None, String::new(), Outcome::Garbage),
            (200, None, good.trim_end().into(), Outcome::Garbage),
            (409, size, "7\n".into(), Outcome::Conflict(7)),
            (
                409,
                Some("text/x.tlog.size; charset=utf-8"),
                "0\n".into(),
                Outcome::Conflict(0),
            ),
            (409, size, "07\n".into(), Outcome::Garbage),
            (409, size, "seven\n".into(), Outcome::Garbage),
            (409, Some("text/plain"), "7\n".into(), Outcome::Garbage),
            (409, None, "7\n".into(), Outcome::Garbage),
            (400, None, String::new(), Outcome::BadRequest),
            (403, None, String::new(), Outcome::Forbidden),
            (404, None, String::new(), Outcome::UnknownLog),
            (422, None, String::new(), Outcome::BadProof),
            (408, None, String::new(), Outcome::Unavailable),
            (503, None, String::new(), Outcome::Unavailable),
            (201, None, good, Outcome::Garbage),
            (302, None, String::new(), Outcome::Garbage),
        ];
        for (status, content_type, body, expected) in cases {
            assert_eq!(
                classify(status, content_type, body.as_bytes(), &key, &note),
                expected,
                "{status} {content_type:?} {body:?}"
            );
        }
        assert_eq!(
            classify(200, None, b"\xff\n", &key, &note),
            Outcome::Garbage
        );
    }

    #[test]
    fn only_answers_that_may_change_are_retried() {
        for outcome in [
            Outcome::Conflict(1),
            Outcome::BadRequest,
            Outcome::BadProof,
            Outcome::Unavailable,
            Outcome::Garbage,
            Outcome::Timeout,
            Outcome::Unreachable,
        ] {
            assert!(outcome.is_worth_retrying(), "{outcome:?}");
        }
        for outcome in [
            Outcome::Cosigned(String::new()),
            Outcome::BadCosignature,
            Outcome::Forbidden,
            Outcome::UnknownLog,
        ] {
            assert!(!outcome.is_worth_retrying(), "{outcome:?}");
        }
    }
}
