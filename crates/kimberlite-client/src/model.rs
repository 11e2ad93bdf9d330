//! What the API answers, as Rust values: streams, appends, events and pages, verify reports,
//! keys. Field names are the JSON's (`docs/SERVER.md` and `/v1/openapi.json`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// A stream as the server shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// Offset the next event gets (= durable events in the stream).
    pub next_offset: u64,
    /// Chain hash (hex) of the last event; `None` while the stream is empty.
    #[serde(default)]
    pub head: Option<String>,
    /// The store found the stream's records damaged: appends are refused.
    #[serde(default)]
    pub damaged: bool,
}

/// What an append did; the server answers only once the batch is durable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Appended {
    /// Offset of the batch's first event.
    pub first_offset: u64,
    /// The stream's next offset after the batch.
    pub next_offset: u64,
    /// Chain hash (hex) of the batch's last event: it commits to the whole stream so far.
    pub head: String,
}

/// One event, verified by the server against the hash chain before it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's offset.
    pub offset: u64,
    /// The event's bytes, exactly as stored.
    pub payload: Vec<u8>,
}

impl Event {
    /// The payload as text, when it is UTF-8.
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

/// An event as the JSON carries it: text, or base64 for other bytes.
#[derive(Debug, Deserialize)]
pub(crate) struct EventJson {
    offset: u64,
    payload: Option<String>,
    payload_base64: Option<String>,
    /// Set instead of a payload for an event sealed for a data subject that the server did
    /// not open (`docs/SERVER.md`, "Data subjects and erasure").
    sealed: Option<SealedJson>,
}

#[derive(Debug, Deserialize)]
struct SealedJson {
    state: String,
    erased_on: Option<String>,
}

impl EventJson {
    /// The event's exact bytes.
    pub(crate) fn into_event(self) -> Result<Event, ClientError> {
        let payload = match (self.payload, self.payload_base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|error| {
                    ClientError::Protocol(format!(
                        "event {}: payload_base64 is not base64: {error}",
                        self.offset
                    ))
                })?,
            (None, None) if self.sealed.is_some() => {
                let sealed = self.sealed.unwrap_or(SealedJson {
                    state: String::new(),
                    erased_on: None,
                });
                let erased = sealed
                    .erased_on
                    .map(|on| format!(" (erased on {on})"))
                    .unwrap_or_default();
                return Err(ClientError::Protocol(format!(
                    "event {} is sealed for a data subject and the server did not open it: \
                     {}{erased}",
                    self.offset, sealed.state
                )));
            }
            _ => {
                return Err(ClientError::Protocol(format!(
                    "event {} has not exactly one of payload and payload_base64",
                    self.offset
                )))
            }
        };
        Ok(Event {
            offset: self.offset,
            payload,
        })
    }
}

/// A page of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The events, in offset order.
    pub events: Vec<Event>,
    /// The offset to ask for next.
    pub next_offset: u64,
    /// The stream's durable next offset when the page was read: the page is the last one
    /// when `next_offset` reaches it.
    pub end_offset: u64,
}

impl Page {
    /// Whether no event after this page existed when it was read.
    #[must_use]
    pub fn is_last(&self) -> bool {
        self.next_offset >= self.end_offset
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PageJson {
    events: Vec<EventJson>,
    next_offset: u64,
    end_offset: u64,
}

impl PageJson {
    pub(crate) fn into_page(self) -> Result<Page, ClientError> {
        let events = self
            .events
            .into_iter()
            .map(EventJson::into_event)
            .collect::<Result<Vec<_>, _>>()?;
        if events
            .windows(2)
            .any(|pair| matches!(pair, [a, b] if b.offset != a.offset + 1))
        {
            return Err(ClientError::Protocol(
                "a page's events are not at consecutive offsets".into(),
            ));
        }
        Ok(Page {
            events,
            next_offset: self.next_offset,
            end_offset: self.end_offset,
        })
    }
}

/// A stream's verify report (`GET /v1/streams/{stream}/verify`). The server answers 200
/// even when the stream is damaged: `intact` and `problems` say.
///
/// Read leniently: only `intact` is required, and a problem's fields are also taken under
/// the names the CLI's `verify --json` uses (`name`, `byte`, `message`), so a report in either
/// shape keeps every location it names.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// Whether every record checked out.
    pub intact: bool,
    /// Records whose checksum, offset and hash link were checked.
    pub records_checked: u64,
    /// The stream's head (chain hash, hex) as verified.
    pub head: Option<String>,
    /// Every problem found, first first.
    pub problems: Vec<Problem>,
    /// The whole answer, for fields this client does not name.
    pub raw: serde_json::Value,
}

impl VerifyReport {
    pub(crate) fn from_json(raw: serde_json::Value) -> Result<Self, ClientError> {
        let intact = raw
            .get("intact")
            .and_then(serde_json::Value::as_bool)
            .ok_or_else(|| ClientError::Protocol("a verify report without `intact`".into()))?;
        // The CLI's shape keeps the head per stream; one stream's report has one.
        let head = text(&raw, &["head"]).or_else(|| match raw.get("streams") {
            Some(serde_json::Value::Array(streams)) if streams.len() == 1 => {
                streams.first().and_then(|stream| text(stream, &["head"]))
            }
            _ => None,
        });
        let problems = match raw.get("problems") {
            Some(serde_json::Value::Array(problems)) => {
                problems.iter().map(Problem::from_json).collect()
            }
            _ => Vec::new(),
        };
        Ok(Self {
            intact,
            records_checked: number(&raw, &["records_checked"]).unwrap_or(0),
            head,
            problems,
            raw,
        })
    }
}

/// One problem a verify found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The stream's name.
    pub stream: Option<String>,
    /// The offset of the damaged record.
    pub offset: Option<u64>,
    /// The segment holding it.
    pub segment: Option<u64>,
    /// The file holding it.
    pub file: Option<String>,
    /// The byte position in that file.
    pub position: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl Problem {
    fn from_json(value: &serde_json::Value) -> Self {
        Self {
            stream: text(value, &["stream", "name"]),
            offset: number(value, &["offset"]),
            segment: number(value, &["segment"]),
            file: text(value, &["file"]),
            position: number(value, &["position", "byte"]),
            reason: text(value, &["reason", "message"]).unwrap_or_default(),
        }
    }
}

/// The first of `keys` in `value` that holds a string.
fn text(value: &serde_json::Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|key| value.get(*key).and_then(serde_json::Value::as_str))
        .map(str::to_owned)
}

/// The first of `keys` in `value` that holds a whole number.
fn number(value: &serde_json::Value, keys: &[&str]) -> Option<u64> {
    keys.iter()
        .find_map(|key| value.get(*key).and_then(serde_json::Value::as_u64))
}

/// A permission a key grants on the streams its pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Append events.
    Append,
    /// Read, verify, proofs, checkpoints, tail.
    Read,
    /// Create streams and keys; implies read.
    Admin,
}

/// One grant of a key: `permission` on the streams matching `pattern` (`*` any run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The permission.
    pub permission: Permission,
    /// The stream name pattern.
    pub pattern: String,
}

/// A key as the server lists it (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyInfo {
    /// The key's id (what the access log records).
    pub id: String,
    /// The key's name, when it has one.
    #[serde(default)]
    pub name: Option<String>,
    /// What it may do.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Whether it was revoked.
    #[serde(default)]
    pub revoked: bool,
}

/// A key just created: the only time its token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewKey {
    /// The key, as `list_keys` shows it.
    pub key: KeyInfo,
    /// The bearer token; the server keeps only its hash.
    pub token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(json: &str) -> Result<Page, ClientError> {
        serde_json::from_str::<PageJson>(json).unwrap().into_page()
    }

    #[test]
    fn payloads_come_back_as_their_exact_bytes() {
        let page = page(
            r#"{"events":[{"offset":4,"payload":"caf\u00e9"},{"offset":5,"payload_base64":"/wA="}],
                "next_offset":6,"end_offset":9}"#,
        )
        .unwrap();
        assert_eq!(page.events[0].text(), Some("caf\u{e9}"));
        assert_eq!(page.events[1].payload, vec![0xff, 0x00]);
        assert_eq!(page.events[1].text(), None);
        assert!(!page.is_last());
    }

    #[test]
    fn verify_reports_are_read_in_either_shape() {
        let api = serde_json::json!({"intact": false, "records_checked": 9, "head": "ab",
            "problems": [{"stream": "s", "offset": 3, "segment": 1, "file": "f",
                "position": 40, "reason": "broken"}]});
        let cli = serde_json::json!({"intact": false, "records_checked": 9,
            "streams": [{"name": "s", "head": "ab"}],
            "problems": [{"id": 1, "name": "s", "offset": 3, "segment": 1, "file": "f",
                "byte": 40, "message": "broken"}]});
        let expected = Problem {
            stream: Some("s".into()),
            offset: Some(3),
            segment: Some(1),
            file: Some("f".into()),
            position: Some(40),
            reason: "broken".into(),
        };
        for raw in [api, cli] {
            let report = VerifyReport::from_json(raw.clone()).unwrap();
            assert!(!report.intact);
            assert_eq!(
                (report.records_checked, report.head.as_deref()),
                (9, Some("ab"))
            );
            assert_eq!(report.problems, std::slice::from_ref(&expected));
            assert_eq!(report.raw, raw);
        }
        assert!(matches!(
            VerifyReport::from_json(serde_json::json!({"problems": []})),
            Err(ClientError::Protocol(_))
        ));
    }

    #[test]
    fn malformed_events_are_protocol_errors() {
        for json in [
            r#"{"events":[{"offset":0}],"next_offset":1,"end_offset":1}"#,
            r#"{"events":[{"offset":0,"payload":"a","payload_base64":"YQ=="}],"next_offset":1,"end_offset":1}"#,
            r#"{"events":[{"offset":0,"payload_base64":"!!"}],"next_offset":1,"end_offset":1}"#,
            r#"{"events":[{"offset":0,"payload":"a"},{"offset":2,"payload":"b"}],"next_offset":3,"end_offset":3}"#,
        ] {
            assert!(
                matches!(page(json), Err(ClientError::Protocol(_))),
                "{json}"
            );
        }
    }
}
