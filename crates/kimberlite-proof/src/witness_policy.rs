//! Witness policies: which witnesses a reader trusts, where they answer, and how many of them
//! must have cosigned a checkpoint (k of n).
//!
//! The text form, one statement per line (`#` starts a comment; blank lines are ignored),
//! after the policy files of Sigsum:
//!
//! ```text
//! witness <verifier key> [<url>]     a witness: its key text (name+id+key), and where it
//!                                    takes add-checkpoint requests (the server's client needs
//!                                    it; an offline verifier does not)
//! quorum <k>                         how many distinct witnesses must have cosigned
//! ```
//!
//! Exactly one `quorum` line; at least one `witness` line; a key listed twice is refused in the
//! text form (a typo there would silently lower the real n).

use crate::checkpoint::Checkpoint;
use crate::cosignature::{CosignatureError, Cosigned, WitnessKey};
use crate::note::{split_note, VerifierKey};

/// Which witnesses a reader trusts and how many of them must have cosigned: k of n.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessPolicy {
    witnesses: Vec<WitnessKey>,
    /// Where each witness (same index) takes add-checkpoint requests, when known.
    urls: Vec<Option<String>>,
    threshold: usize,
}

impl WitnessPolicy {
    /// `threshold` of `witnesses` (keys listed twice count once), with no URLs.
    pub fn new(witnesses: Vec<WitnessKey>, threshold: usize) -> Result<Self, CosignatureError> {
        Self::with_urls(
            witnesses.into_iter().map(|key| (key, None)).collect(),
            threshold,
        )
    }

    /// `threshold` of `witnesses`, each with the URL it answers at (keys listed twice count
    /// once; the first URL given is kept).
    pub fn with_urls(
        witnesses: Vec<(WitnessKey, Option<String>)>,
        threshold: usize,
    ) -> Result<Self, CosignatureError> {
        let mut keys: Vec<WitnessKey> = Vec::with_capacity(witnesses.len());
        let mut urls = Vec::with_capacity(witnesses.len());
        for (key, url) in witnesses {
            if !keys.contains(&key) {
                keys.push(key);
                urls.push(url);
            }
        }
        if threshold == 0 || threshold > keys.len() {
            return Err(CosignatureError::BadThreshold {
                threshold,
                witnesses: keys.len(),
            });
        }
        Ok(Self {
            witnesses: keys,
            urls,
            threshold,
        })
    }

    /// Parses the text form (module docs). Errors name the line (1-based) and what is wrong.
    pub fn parse(text: &str) -> Result<Self, CosignatureError> {
        let bad = |line: usize, reason: String| CosignatureError::BadPolicy { line, reason };
        let mut witnesses: Vec<(WitnessKey, Option<String>)> = Vec::new();
        let mut quorum: Option<usize> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split('#').next().unwrap_or_default().trim();
            let mut words = content.split_whitespace();
            match words.next() {
                None => continue,
                Some("witness") => {
                    let key = words
                        .next()
                        .ok_or_else(|| bad(line, "`witness` needs a verifier key".into()))?;
                    let key =
                        WitnessKey::parse(key).map_err(|error| bad(line, error.to_string()))?;
                    let url = words.next().map(str::to_owned);
                    if let Some(extra) = words.next() {
                        return Err(bad(line, format!("unexpected `{extra}` after the URL")));
                    }
                    if let Some(url) = &url {
                        if !(url.starts_with("http://") || url.starts_with("https://")) {
                            return Err(bad(line, format!("`{url}` is not an http(s) URL")));
                        }
                    }
                    if witnesses.iter().any(|(known, _)| *known == key) {
                        return Err(bad(line, format!("witness {} is listed twice", key.name())));
                    }
                    witnesses.push((key, url));
                }
                Some("quorum") => {
                    if quorum.is_some() {
                        return Err(bad(line, "a second `quorum` line".into()));
                    }
                    let k = words
                        .next()
                        .and_then(|k| k.parse::<usize>().ok())
                        .ok_or_else(|| bad(line, "`quorum` needs a number".into()))?;
                    if let Some(extra) = words.next() {
                        return Err(bad(line, format!("unexpected `{extra}` after the quorum")));
                    }
                    quorum = Some(k);
                }
                Some(other) => {
                    return Err(bad(
                        line,
                        format!("unknown statement `{other}` (expected `witness` or `quorum`)"),
                    ))
                }
            }
        }
        let threshold = quorum.ok_or_else(|| bad(0, "no `quorum` line".into()))?;
        Self::with_urls(witnesses, threshold)
    }

    /// The text form, which [`WitnessPolicy::parse`] reads back.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (key, url) in self.witnesses.iter().zip(&self.urls) {
            text.push_str("witness ");
            text.push_str(&key.to_text());
            if let Some(url) = url {
                text.push(' ');
                text.push_str(url);
            }
            text.push('\n');
        }
        text.push_str(&format!("quorum {}\n", self.threshold));
        text
    }

    /// The policy's witnesses.
    #[must_use]
    pub fn witnesses(&self) -> &[WitnessKey] {
        &self.witnesses
    }

    /// The URL `witness` takes add-checkpoint requests at, if the policy names one.
    #[must_use]
    pub fn url(&self, witness: &WitnessKey) -> Option<&str> {
        let index = self.witnesses.iter().position(|key| key == witness)?;
        self.urls.get(index)?.as_deref()
    }

    /// The number of valid cosignatures required.
    #[must_use]
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Checks that at least `threshold` of the policy's witnesses cosigned `note`; returns
    /// the cosignatures that verified. A missing or bad cosignature only counts as absent.
    pub fn check(&self, note: &str) -> Result<Vec<Cosigned>, CosignatureError> {
        split_note(note)?;
        let valid: Vec<Cosigned> = self
            .witnesses
            .iter()
            .filter_map(|witness| witness.verify(note).ok())
            .collect();
        if valid.len() < self.threshold {
            return Err(CosignatureError::BelowThreshold {
                valid: valid.len(),
                threshold: self.threshold,
                names: self
                    .witnesses
                    .iter()
                    .map(WitnessKey::name)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(valid)
    }
}

/// The whole offline check of a witnessed checkpoint: the log's signature by `log`, then
/// `policy`'s threshold of cosignatures. Returns the checkpoint and the cosignatures.
pub fn verify_witnessed(
    note: &str,
    log: &VerifierKey,
    policy: &WitnessPolicy,
) -> Result<(Checkpoint, Vec<Cosigned>), CosignatureError> {
    let checkpoint = Checkpoint::open(note, log)?;
    let cosigned = policy.check(note)?;
    Ok((checkpoint, cosigned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosignature::WitnessSigner;

    fn key(name: &str, seed: u8) -> WitnessKey {
        WitnessSigner::from_seed(name, [seed; 32])
            .unwrap()
            .verifier()
    }

    #[test]
    fn the_text_form_reads_back_with_urls_and_comments() {
        let text = format!(
            "# the auditors' witnesses\nwitness {} http://127.0.0.1:7001\n\nwitness {}   # offline\nquorum 2\n",
            key("w1", 1).to_text(),
            key("w2", 2).to_text()
        );
        let policy = WitnessPolicy::parse(&text).unwrap();
        assert_eq!(policy.threshold(), 2);
        assert_eq!(policy.witnesses(), &[key("w1", 1), key("w2", 2)]);
        assert_eq!(policy.url(&key("w1", 1)), Some("http://127.0.0.1:7001"));
        assert_eq!(policy.url(&key("w2", 2)), None);
        assert_eq!(policy.url(&key("w3", 3)), None);
        assert_eq!(WitnessPolicy::parse(&policy.to_text()).unwrap(), policy);
    }

    #[test]
    fn bad_policies_name_the_line_and_the_fault() {
        let w1 = key("w1", 1).to_text();
        let cases = [
            (format!("witness {w1}\n"), 0, "no `quorum`"),
            (format!("witness {w1}\nquorum 2\n"), 0, ""),
            (format!("witness {w1}\nquorum 0\n"), 0, ""),
            (format!("witness {w1}\nquorum one\n"), 2, "needs a number"),
            (format!("witness {w1}\nquorum 1\nquorum 1\n"), 3, "second"),
            (
                format!("witness {w1}\nwitness {w1}\nquorum 1\n"),
                2,
                "twice",
            ),
            (
                format!("witness {w1} ftp://x\nquorum 1\n"),
                1,
                "not an http",
            ),
            (
                format!("witness {w1} http://x y\nquorum 1\n"),
                1,
                "unexpected `y`",
            ),
            ("witness\nquorum 1\n".to_owned(), 1, "needs a verifier key"),
            ("witness w1+00000000+AAAA\nquorum 1\n".to_owned(), 1, ""),
            ("log abc\n".to_owned(), 1, "unknown statement `log`"),
        ];
        for (text, line, reason) in cases {
            match WitnessPolicy::parse(&text) {
                Err(CosignatureError::BadPolicy {
                    line: got,
                    reason: why,
                }) => {
                    assert_eq!(got, line, "{text}");
                    assert!(why.contains(reason), "{text}: {why}");
                }
                Err(CosignatureError::BadThreshold { .. }) => assert_eq!(reason, "", "{text}"),
                other => panic!("{text} accepted: {other:?}"),
            }
        }
    }
}
