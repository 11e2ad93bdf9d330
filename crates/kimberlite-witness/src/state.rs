//! The witness's state kept in a Kimberlite store, so that its own history is a hash chain:
//! stream `witness.logs` holds one event per `add-log` (origin and the log's verifier key; a
//! later event for an origin replaces its key), stream `witness.cosigned` one event per
//! cosigned checkpoint (origin, size, root, timestamp). Open replays both streams; the last
//! cosigned event of an origin is what the witness compares requests with.
//!
//! An event is appended and synced before the cosignature is released: a witness that
//! crashes after the sync and before answering has only promised more than it said.

use std::collections::BTreeMap;
use std::path::Path;

use kimberlite::{ExpectedOffset, Kimberlite, Offset, StreamId};
use kimberlite_proof::{Hash, VerifierKey};
use serde::{Deserialize, Serialize};

use crate::decision::Cosigned;

/// The stream of configured logs.
pub const LOGS_STREAM: &str = "witness.logs";
/// The stream of cosigned checkpoints.
pub const COSIGNED_STREAM: &str = "witness.cosigned";

/// Why the witness's store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed (I/O, corruption).
    #[error("witness store: {0}")]
    Store(#[from] kimberlite::Error),
    /// An event of the witness's streams does not decode: the store is not a witness's,
    /// or was written by something else.
    #[error("witness store: event {offset} of {stream} is not a witness event: {reason}")]
    BadEvent {
        /// The stream.
        stream: &'static str,
        /// The event's offset.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// A verifier key given to `add-log` (or stored) is malformed.
    #[error("log key for {origin:?}: {reason}")]
    BadKey {
        /// The origin.
        origin: String,
        /// Why.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct LogEvent {
    origin: String,
    key: String,
}

#[derive(Serialize, Deserialize)]
struct CosignedEvent {
    origin: String,
    size: u64,
    root: Hash,
    timestamp: u64,
}

/// A configured log, as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The log's origin.
    pub origin: String,
    /// The log's verifier key.
    pub key: VerifierKey,
    /// The last checkpoint cosigned, if any.
    pub cosigned: Option<Cosigned>,
}

/// The witness's store and the state rebuilt from it.
#[derive(Debug)]
pub struct WitnessState {
    store: Kimberlite,
    /// `None` only in a read-only state whose store has no such stream yet.
    logs_stream: Option<StreamId>,
    cosigned_stream: Option<StreamId>,
    logs: BTreeMap<String, VerifierKey>,
    cosigned: BTreeMap<String, Cosigned>,
}

impl WitnessState {
    /// Opens (or creates) the witness store in `dir` and replays its streams.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        Self::from_store(Kimberlite::open(dir)?)
    }

    /// Opens the witness store in `dir` read-only (no lock, nothing written: beside a
    /// running witness), for `list`. Its `add_log` and `record` fail.
    pub fn open_read_only(dir: &Path) -> Result<Self, StateError> {
        let config = kimberlite::Config::default().create_if_missing(false);
        Self::from_store(Kimberlite::open_read_only(dir, config)?)
    }

    /// The state over an already open store (an in-memory one in tests).
    pub fn from_store(store: Kimberlite) -> Result<Self, StateError> {
        let logs_stream = stream(&store, LOGS_STREAM)?;
        let cosigned_stream = stream(&store, COSIGNED_STREAM)?;
        let mut logs = BTreeMap::new();
        for (offset, event) in replay::<LogEvent>(&store, logs_stream, LOGS_STREAM)? {
            let key = VerifierKey::parse(&event.key).map_err(|e| StateError::BadEvent {
                stream: LOGS_STREAM,
                offset,
                reason: e.to_string(),
            })?;
            logs.insert(event.origin, key);
        }
        let mut cosigned = BTreeMap::new();
        for (_, event) in replay::<CosignedEvent>(&store, cosigned_stream, COSIGNED_STREAM)? {
            let state = Cosigned {
                size: event.size,
                root: event.root,
            };
            cosigned.insert(event.origin, state);
        }
        Ok(Self {
            store,
            logs_stream,
            cosigned_stream,
            logs,
            cosigned,
        })
    }

    /// The configured logs, by origin.
    #[must_use]
    pub fn logs(&self) -> &BTreeMap<String, VerifierKey> {
        &self.logs
    }

    /// The last checkpoint cosigned for `origin`.
    #[must_use]
    pub fn cosigned(&self, origin: &str) -> Option<Cosigned> {
        self.cosigned.get(origin).copied()
    }

    /// Every configured log with its state.
    #[must_use]
    pub fn list(&self) -> Vec<LogEntry> {
        self.logs
            .iter()
            .map(|(origin, key)| LogEntry {
                origin: origin.clone(),
                key: key.clone(),
                cosigned: self.cosigned(origin),
            })
            .collect()
    }

    /// Configures a log: checkpoints of `origin` signed by `key` (a signed-note verifier
    /// key, of any name) are accepted. A later call for the same origin replaces its key.
    pub fn add_log(&mut self, origin: &str, key: &str) -> Result<(), StateError> {
        let bad = |reason: String| StateError::BadKey {
            origin: origin.to_owned(),
            reason,
        };
        let parsed = VerifierKey::parse(key).map_err(|e| bad(e.to_string()))?;
        if origin.is_empty() || origin.contains('\n') {
            return Err(bad("an origin is one non-empty line".into()));
        }
        let event = LogEvent {
            origin: origin.to_owned(),
            key: parsed.to_text(),
        };
        self.append(self.logs_stream, LOGS_STREAM, &event)?;
        self.logs.insert(origin.to_owned(), parsed);
        Ok(())
    }

    /// Records a cosigned checkpoint, durably, before its cosignature is released.
    pub fn record(
        &mut self,
        origin: &str,
        cosigned: Cosigned,
        timestamp: u64,
    ) -> Result<(), StateError> {
        let event = CosignedEvent {
            origin: origin.to_owned(),
            size: cosigned.size,
            root: cosigned.root,
            timestamp,
        };
        self.append(self.cosigned_stream, COSIGNED_STREAM, &event)?;
        self.cosigned.insert(origin.to_owned(), cosigned);
        Ok(())
    }

    fn append<T: Serialize>(
        &self,
        stream: Option<StreamId>,
        name: &'static str,
        event: &T,
    ) -> Result<(), StateError> {
        let stream = stream.ok_or(StateError::Store(kimberlite::Error::ReadOnly))?;
        let bytes = serde_json::to_vec(event).map_err(|e| StateError::BadEvent {
            stream: name,
            offset: 0,
            reason: e.to_string(),
        })?;
        self.store.append(stream, [bytes], ExpectedOffset::Any)?;
        self.store.sync()?;
        Ok(())
    }
}

/// The stream `name`, created if missing unless the store is read-only.
fn stream(store: &Kimberlite, name: &str) -> Result<Option<StreamId>, StateError> {
    match store.stream(name) {
        Some(id) => Ok(Some(id)),
        None if store.is_read_only() => Ok(None),
        None => Ok(Some(store.create_stream(name)?)),
    }
}

fn replay<T: for<'de> Deserialize<'de>>(
    store: &Kimberlite,
    id: Option<StreamId>,
    name: &'static str,
) -> Result<Vec<(u64, T)>, StateError> {
    let mut events = Vec::new();
    let Some(id) = id else {
        return Ok(events);
    };
    for event in store.events(id, Offset::from(0)) {
        let event = event?;
        let offset = u64::from(event.offset);
        let decoded = serde_json::from_slice(&event.payload).map_err(|e| StateError::BadEvent {
            stream: name,
            offset,
            reason: e.to_string(),
        })?;
        events.push((offset, decoded));
    }
    Ok(events)
}
