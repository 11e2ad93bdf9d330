//! Anchors: head hashes kept *outside* the store, to catch what the chain alone cannot.
//!
//! A hash chain proves that every stored record links to the one before it, but a store that
//! lost its newest records (a truncated file, a restored old backup) still holds a perfectly
//! valid, shorter chain. An [`Anchor`] written down elsewhere ("stream `audit` held 3,248
//! events and its head hash was `31ed…`") closes that gap: [`Kimberlite::check_anchor`]
//! recomputes the chain hash after that many events and compares. A stream that has grown since
//! still matches (its first 3,248 events are unchanged); one that is shorter, or whose earlier
//! events were rewritten, does not.
//!
//! Text form, as printed by `kimberlite verify` and accepted by `--anchor`:
//! `NAME@EVENTS=HEX` (the name may itself contain `@` or `=`; the last ones separate).

use std::fmt;
use std::str::FromStr;

use kimberlite_crypto::ChainHash;
use kimberlite_storage::Record;
use kimberlite_types::{Offset, StreamId};

use crate::error::{Error, Result};
use crate::report::Problem;
use crate::store::Kimberlite;

/// A stream's head hash after a number of events, recorded outside the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The stream's name.
    pub stream: String,
    /// How many events the stream held (its next offset then).
    pub events: u64,
    /// The chain hash of its last event then.
    pub hash: ChainHash,
}

/// Why a text is not an anchor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid anchor {text:?}: {reason} (expected NAME@EVENTS=HASH)")]
pub struct ParseAnchorError {
    text: String,
    reason: &'static str,
}

impl FromStr for Anchor {
    type Err = ParseAnchorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| ParseAnchorError {
            text: text.to_owned(),
            reason,
        };
        let (left, hash) = text.rsplit_once('=').ok_or_else(|| error("no '='"))?;
        let (stream, events) = left.rsplit_once('@').ok_or_else(|| error("no '@'"))?;
        let events: u64 = events
            .parse()
            .map_err(|_| error("EVENTS is not a number"))?;
        if events == 0 {
            return Err(error("EVENTS must be at least 1"));
        }
        let hash: ChainHash = hash
            .parse()
            .map_err(|_| error("HASH is not 64 hex digits"))?;
        if stream.is_empty() {
            return Err(error("NAME is empty"));
        }
        Ok(Anchor {
            stream: stream.to_owned(),
            events,
            hash,
        })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}={}", self.stream, self.events, self.hash)
    }
}

impl Kimberlite {
    /// The chain hash after the first `events` events of stream `id` (its head when it held
    /// that many), recomputed from the stored events; `None` when `events` is 0 or the stream
    /// holds fewer events. Reads the stream's first `events` events.
    pub fn prefix_hash(&self, id: StreamId, events: u64) -> Result<Option<ChainHash>> {
        // A pruned stream's chain goes on from the hash kept at its cut.
        let (first, mut hash) = self.chain_start(id)?;
        if events < first.as_u64() && events > 0 {
            return Err(Error::Pruned {
                name: self.stream_name(id).unwrap_or_default(),
                offset: Offset::new(events - 1),
                first_offset: first,
            });
        }
        let mut count = first.as_u64();
        for event in self.events(id, first) {
            if count == events {
                break;
            }
            let event = event?;
            hash = Some(Record::new(event.offset, hash, event.payload).compute_hash());
            count += 1;
        }
        Ok(if count == events { hash } else { None })
    }

    /// Checks `anchor` against the store: `Ok(None)` when the stream's first `anchor.events`
    /// events still hash to `anchor.hash`, `Ok(Some(problem))` when they do not (or the stream
    /// is shorter). Errors: [`Error::StreamNotFound`], and read errors (corruption included).
    pub fn check_anchor(&self, anchor: &Anchor) -> Result<Option<Problem>> {
        let id = self
            .stream(&anchor.stream)
            .ok_or_else(|| Error::StreamNotFound {
                name: anchor.stream.clone(),
            })?;
        let problem = |offset: u64, reason: String| Problem {
            stream: id,
            name: Some(anchor.stream.clone()),
            offset: Offset::new(offset),
            segment: None,
            file: None,
            position: None,
            message: format!("anchor {anchor} does not hold: {reason}"),
            reason,
        };
        let held = match self.head(id) {
            Ok(head) => head.next_offset.as_u64(),
            // Damage is evidence, like a failed check: a problem, not an error.
            Err(Error::StreamDamaged { .. }) => {
                return Ok(Some(problem(
                    0,
                    "the stream's records could not be read when the store was opened, so the \
                     anchor cannot be checked (verify reports where)"
                        .to_owned(),
                )))
            }
            Err(error) => return Err(error),
        };
        if held < anchor.events {
            return Ok(Some(problem(
                held,
                format!(
                    "the stream holds {held} events, the anchor {}: events were cut off",
                    anchor.events
                ),
            )));
        }
        match self.prefix_hash(id, anchor.events)? {
            Some(hash) if hash == anchor.hash => Ok(None),
            found => Ok(Some(problem(
                anchor.events - 1,
                format!(
                    "the chain hash after {} events is {}, the anchor says {}: \
                     events were rewritten, or the anchor belongs to another store",
                    anchor.events,
                    found.map_or_else(|| "none".to_owned(), |h| h.to_string()),
                    anchor.hash
                ),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExpectedOffset;

    #[test]
    fn anchors_parse_and_print() {
        let hash = "ab".repeat(32);
        let anchor: Anchor = format!("we@ird=name@12={hash}").parse().unwrap();
        assert_eq!(anchor.stream, "we@ird=name");
        assert_eq!(anchor.events, 12);
        assert_eq!(anchor.to_string(), format!("we@ird=name@12={hash}"));
        for bad in [
            "",
            "a@1",
            "a=ff",
            &format!("a@x={hash}"),
            &format!("a@0={hash}"),
            "a@1=zz",
        ] {
            assert!(bad.parse::<Anchor>().is_err(), "{bad:?}");
        }
        assert!(format!("@3={hash}").parse::<Anchor>().is_err());
    }

    #[test]
    fn anchors_hold_while_a_stream_grows_and_fail_when_it_differs() {
        let store = Kimberlite::in_memory();
        let id = store.create_stream("audit").unwrap();
        let first = store.append(id, ["a", "b"], ExpectedOffset::Any).unwrap();
        assert_eq!(store.prefix_hash(id, 2).unwrap(), Some(first.head));
        assert_eq!(store.prefix_hash(id, 0).unwrap(), None);
        assert_eq!(store.prefix_hash(id, 3).unwrap(), None);
        let anchor = Anchor {
            stream: "audit".into(),
            events: 2,
            hash: first.head,
        };
        store.append(id, ["c"], ExpectedOffset::Any).unwrap();
        assert_eq!(
            store.check_anchor(&anchor).unwrap(),
            None,
            "growth keeps anchors"
        );

        let longer = Anchor {
            events: 5,
            ..anchor.clone()
        };
        let problem = store.check_anchor(&longer).unwrap().unwrap();
        assert_eq!(problem.offset, Offset::new(3));
        assert!(problem.reason.contains("cut off"), "{}", problem.reason);

        let other = Kimberlite::in_memory();
        let other_id = other.create_stream("audit").unwrap();
        other
            .append(other_id, ["a", "B"], ExpectedOffset::Any)
            .unwrap();
        let problem = other.check_anchor(&anchor).unwrap().unwrap();
        assert_eq!(problem.offset, Offset::new(1));
        assert!(problem.reason.contains("rewritten"), "{}", problem.reason);

        let missing = Anchor {
            stream: "nope".into(),
            ..anchor
        };
        assert!(matches!(
            store.check_anchor(&missing),
            Err(Error::StreamNotFound { .. })
        ));
    }
}
