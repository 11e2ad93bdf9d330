//! How `read` and `tail` print an event that may be sealed for a data subject: opened with
//! `--master-key`, otherwise said to be sealed, or erased (with the erasure's time and
//! event), never its envelope as if it were the event (`docs/COMPLIANCE.md`, "Erasure").

use std::io::Write;

use kimberlite::sealed::{Content, Erasures, OpenedEvent, SubjectKeys};
use kimberlite::{Event, Kimberlite, StreamId};

use crate::error::CliError;
use crate::print::{print_event, Unprinted};

/// What opens events for printing: the key store (with the master key), or the erasure log.
pub enum Opener {
    Keys(Box<SubjectKeys>),
    Erasures(Erasures),
}

impl Opener {
    /// The key store of `store` when a master key is given, the erasure log otherwise.
    pub fn new(store: &Kimberlite, master_key: Option<&std::path::Path>) -> Result<Self, CliError> {
        Ok(match master_key {
            Some(path) => Opener::Keys(Box::new(crate::erase::open_keys(store, path)?)),
            None => Opener::Erasures(Erasures::load(store)?),
        })
    }

    pub fn open(&self, id: StreamId, event: Event) -> Result<OpenedEvent, CliError> {
        Ok(match self {
            Opener::Keys(keys) => keys.open_event(id, event)?,
            Opener::Erasures(erasures) => erasures.open_event(event),
        })
    }
}

/// Prints `opened` as one line: its bytes as `print_event` does when the reader can have them,
/// else a bracketed line (text) or an object naming what it is (JSON).
pub fn print_opened(
    out: &mut impl Write,
    opened: &OpenedEvent,
    json: bool,
) -> Result<(), Unprinted> {
    let offset = opened.offset.as_u64();
    let leaf = opened.leaf_hash.to_string();
    let (kind, detail, text) = match &opened.content {
        Content::Plain(payload) | Content::Opened { payload, .. } => {
            let event = Event {
                offset: opened.offset,
                payload: payload.clone(),
            };
            return print_event(out, &event, json);
        }
        Content::Sealed { key_id } => (
            "sealed",
            serde_json::json!({ "key_id": key_id.to_hex(), "leaf_hash": leaf }),
            format!(
                "[sealed] offset {offset}: sealed for a data subject (key {key_id}, leaf hash \
                 {leaf}); read it with --master-key"
            ),
        ),
        Content::Erased { key_id, erasure } => {
            let on = kimberlite_server::rfc3339(erasure.erased_at_unix_s);
            (
                "erased",
                serde_json::json!({
                    "key_id": key_id.to_hex(),
                    "leaf_hash": leaf,
                    "erased_on": on,
                    "erasure_offset": erasure.offset.as_u64(),
                }),
                format!(
                    "[erased] offset {offset}: erased on {on} (key {key_id}, leaf hash {leaf}; \
                     erasure event at offset {} of _erasure)",
                    erasure.offset
                ),
            )
        }
        Content::Unreadable { key_id, reason } => (
            "unreadable",
            serde_json::json!({
                "key_id": key_id.map(|k| k.to_hex()),
                "leaf_hash": leaf,
                "reason": reason,
            }),
            format!("[unreadable] offset {offset}: a sealed event: {reason} (leaf hash {leaf})"),
        ),
        _ => (
            "unknown",
            serde_json::json!({ "leaf_hash": leaf }),
            format!("[unknown] offset {offset} (leaf hash {leaf})"),
        ),
    };
    if json {
        let line = serde_json::json!({ "offset": offset, kind: detail });
        Ok(writeln!(out, "{line}")?)
    } else {
        Ok(writeln!(out, "{text}")?)
    }
}
