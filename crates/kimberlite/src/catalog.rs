//! The stream catalogue: stream names, kept in the log itself.
//!
//! Stream names live in a reserved system stream ([`CATALOG_STREAM`], id 0), one JSON event
//! per registration:
//!
//! ```json
//! {"op":"create_stream","stream":1,"name":"patient-access"}
//! ```
//!
//! So *all* state of a store is derived from its hash-chained log: a name cannot be changed or
//! dropped without breaking the system stream's chain, and `verify_all` checks it like any other
//! stream. On open, the catalogue is replayed from offset 0; entries must give dense ids from 1
//! in order, valid and unique names: anything else is [`Error::CatalogCorrupt`], never skipped.
//!
//! Stream ids are never reused and streams are never deleted (an append-only log has no
//! delete); a later version may add operations, which this version refuses to guess at.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kimberlite_types::{Offset, StreamId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::stream_name::{look_alike_reason, skeleton};

/// The system stream holding the catalogue. Never a user stream.
pub const CATALOG_STREAM: StreamId = StreamId::new(0);

/// Longest stream name accepted, in UTF-8 bytes.
pub const MAX_STREAM_NAME_BYTES: usize = 255;

/// One catalogue event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Entry {
    /// A stream named `name` exists from now on, with id `stream`.
    CreateStream { stream: u64, name: String },
}

/// Checks that `name` can name a new stream: non-empty, at most [`MAX_STREAM_NAME_BYTES`]
/// bytes, no control characters, no leading or trailing whitespace, and nothing that makes it
/// look like another name: its letters come from one script (or a combination one language
/// writes with: Latin with Han and Kana, with Han and Hangul, with Han and Bopomofo), and it
/// holds no invisible characters (format characters such as zero-width spaces, combining
/// marks, whitespace other than the ASCII space). So `ok` and `оk` with a Cyrillic `о` cannot
/// both name streams: the second is refused. Names are not normalised. Creating a stream also
/// refuses a name that looks like an existing one letter for letter (all-Cyrillic `ор` beside
/// Latin `op`; Greek, Cyrillic and fullwidth look-alikes of Latin letters), which this
/// function alone cannot know.
///
/// A store whose catalogue already holds a name this refuses (created before the script rule)
/// still opens: the rule applies to new names only.
///
/// # Examples
///
/// ```
/// assert!(kimberlite::validate_stream_name("patient-access").is_ok());
/// assert!(kimberlite::validate_stream_name("").is_err());
/// assert!(kimberlite::validate_stream_name("tab\there").is_err());
/// assert!(kimberlite::validate_stream_name("\u{43e}k").is_err()); // Cyrillic о, Latin k
/// ```
pub fn validate_stream_name(name: &str) -> Result<()> {
    stored_name_check(name)?;
    match look_alike_reason(name) {
        Some(reason) => Err(Error::InvalidStreamName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The rules every name in a catalogue meets, whenever it was created.
fn stored_name_check(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("a name must not be empty")
    } else if name.len() > MAX_STREAM_NAME_BYTES {
        Some("a name must be at most 255 bytes long")
    } else if name.chars().any(char::is_control) {
        Some("a name must not contain control characters")
    } else if name.trim() != name {
        Some("a name must not start or end with whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidStreamName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Stream names and ids, as replayed from the system stream.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    by_name: BTreeMap<String, StreamId>,
    names: HashMap<StreamId, String>,
    /// Each name's [`skeleton`]: a new name may not look like an existing one.
    by_skeleton: HashMap<String, StreamId>,
    next_id: u64,
}

impl Catalog {
    /// An empty catalogue: the first stream gets id 1.
    pub(crate) fn new() -> Self {
        Self {
            by_name: BTreeMap::new(),
            names: HashMap::new(),
            by_skeleton: HashMap::new(),
            next_id: 1,
        }
    }

    /// The id the next created stream gets.
    pub(crate) fn next_id(&self) -> StreamId {
        StreamId::new(self.next_id)
    }

    /// Number of entries applied (the system stream's next offset).
    pub(crate) fn len(&self) -> u64 {
        self.next_id - 1
    }

    pub(crate) fn id(&self, name: &str) -> Option<StreamId> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn name(&self, stream: StreamId) -> Option<&str> {
        self.names.get(&stream).map(String::as_str)
    }

    /// Streams in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, StreamId)> {
        self.by_name.iter().map(|(name, id)| (name.as_str(), *id))
    }

    /// The event registering `name` as the next stream; `Err` if the name is invalid or taken.
    pub(crate) fn registration(&self, name: &str) -> Result<(StreamId, Bytes)> {
        validate_stream_name(name)?;
        if self.by_name.contains_key(name) {
            return Err(Error::StreamExists {
                name: name.to_owned(),
            });
        }
        if self.by_skeleton.contains_key(&skeleton(name)) {
            return Err(Error::InvalidStreamName {
                name: name.to_owned(),
                reason: "a name must not look like an existing stream's name (letters of \
                         another script that look the same)",
            });
        }
        let entry = Entry::CreateStream {
            stream: self.next_id,
            name: name.to_owned(),
        };
        let json = serde_json::to_vec(&entry).map_err(|error| Error::CatalogCorrupt {
            offset: Offset::new(self.len()),
            reason: format!("cannot encode entry: {error}"),
        })?;
        Ok((self.next_id(), Bytes::from(json)))
    }

    /// Applies the catalogue event stored at `offset`.
    pub(crate) fn apply(&mut self, offset: Offset, payload: &[u8]) -> Result<StreamId> {
        let corrupt = |reason: String| Error::CatalogCorrupt { offset, reason };
        if offset.as_u64() != self.len() {
            return Err(corrupt(format!("expected entry number {}", self.len())));
        }
        let entry: Entry = serde_json::from_slice(payload)
            .map_err(|error| corrupt(format!("not a catalogue entry: {error}")))?;
        let Entry::CreateStream { stream, name } = entry;
        if stream != self.next_id {
            return Err(corrupt(format!(
                "registers stream id {stream}, expected {}",
                self.next_id
            )));
        }
        stored_name_check(&name).map_err(|error| corrupt(error.to_string()))?;
        if self.by_name.contains_key(&name) {
            return Err(corrupt(format!("registers {name:?} a second time")));
        }
        let id = StreamId::new(stream);
        self.by_skeleton.entry(skeleton(&name)).or_insert(id);
        self.by_name.insert(name.clone(), id);
        self.names.insert(id, name);
        self.next_id += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_round_trips() {
        let mut catalog = Catalog::new();
        let (id, event) = catalog.registration("patients").unwrap();
        assert_eq!(id, StreamId::new(1));
        assert_eq!(
            &event[..],
            br#"{"op":"create_stream","stream":1,"name":"patients"}"#
        );
        assert_eq!(catalog.apply(Offset::ZERO, &event).unwrap(), id);
        assert_eq!(catalog.id("patients"), Some(id));
        assert_eq!(catalog.name(id), Some("patients"));
        assert!(matches!(
            catalog.registration("patients"),
            Err(Error::StreamExists { .. })
        ));
        assert_eq!(catalog.next_id(), StreamId::new(2));
    }

    #[test]
    fn names_are_validated() {
        for bad in ["", " lead", "trail ", "nul\0", "line\nbreak"] {
            assert!(validate_stream_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_stream_name(&"x".repeat(MAX_STREAM_NAME_BYTES)).is_ok());
        assert!(validate_stream_name(&"x".repeat(MAX_STREAM_NAME_BYTES + 1)).is_err());
        assert!(validate_stream_name("ünïcode/stream.name 1").is_ok());
    }

    #[test]
    fn look_alike_names_are_refused_but_stored_ones_still_replay() {
        let mut catalog = Catalog::new();
        let (_, event) = catalog.registration("ok").unwrap();
        catalog.apply(Offset::ZERO, &event).unwrap();
        let (_, event) = catalog.registration("op").unwrap();
        catalog.apply(Offset::new(1), &event).unwrap();
        for look_alike in [
            "\u{43e}k",
            "o\u{200b}k",
            "\u{3bf}k",
            "\u{43e}\u{440}",
            "\u{ff4f}\u{ff50}",
        ] {
            assert!(
                matches!(
                    catalog.registration(look_alike),
                    Err(Error::InvalidStreamName { .. })
                ),
                "{look_alike:?}"
            );
        }
        // A catalogue written before the script rule keeps opening.
        let stored = "{\"op\":\"create_stream\",\"stream\":3,\"name\":\"\u{43e}k\"}";
        assert_eq!(
            catalog.apply(Offset::new(2), stored.as_bytes()).unwrap(),
            StreamId::new(3)
        );
        assert_eq!(catalog.id("\u{43e}k"), Some(StreamId::new(3)));
    }

    #[test]
    fn bad_entries_are_refused() {
        let mut catalog = Catalog::new();
        let skip = br#"{"op":"create_stream","stream":2,"name":"a"}"#;
        assert!(catalog.apply(Offset::ZERO, skip).is_err());
        assert!(catalog.apply(Offset::ZERO, b"not json").is_err());
        let unknown = br#"{"op":"delete_stream","stream":1}"#;
        assert!(catalog.apply(Offset::ZERO, unknown).is_err());
        let good = br#"{"op":"create_stream","stream":1,"name":"a"}"#;
        assert!(catalog.apply(Offset::new(1), good).is_err(), "wrong offset");
        catalog.apply(Offset::ZERO, good).unwrap();
        let dup = br#"{"op":"create_stream","stream":2,"name":"a"}"#;
        let error = catalog.apply(Offset::new(1), dup).unwrap_err();
        assert!(error.is_corruption(), "{error}");
        assert_eq!(catalog.len(), 1);
    }
}
