//! The commands a Raft log entry carries and what applying one answers: plain, serde values,
//! the same bytes on every replica (docs/REPLICATION.md, section "Commands").

use std::fmt;

use bytes::Bytes;
use kimberlite::{ChainHash, StreamHead};
use kimberlite_storage::Record;
use kimberlite_types::Offset;
use serde::{Deserialize, Serialize};

/// Names one client request across retries: a client picks `client` once (at random) and
/// numbers its requests; a retry carries the same id and gets the first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    /// The client's identity, unique among the cluster's clients.
    pub client: u64,
    /// The request's number at that client.
    pub seq: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}/{}", self.client, self.seq)
    }
}

/// A stream's head in a command: where its next event goes and its chain hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Head {
    /// The stream's next offset (= its number of events).
    pub next_offset: u64,
    /// The chain hash of its last event; `None` while it is empty.
    pub hash: Option<[u8; 32]>,
}

impl Head {
    /// The command form of a store's head.
    #[must_use]
    pub fn of(head: StreamHead) -> Self {
        Self {
            next_offset: head.next_offset.as_u64(),
            hash: head.hash.map(|hash| *hash.as_bytes()),
        }
    }

    /// The head after `events` are appended to a stream whose head is `self`: what every
    /// replica must compute when it applies them (the chain hash of SPEC.md, recomputed here
    /// by the leader before it proposes).
    #[must_use]
    pub fn after(self, events: &[Bytes]) -> Self {
        let mut hash = self.hash.map(ChainHash::from_bytes);
        let mut offset = self.next_offset;
        for payload in events {
            hash = Some(Record::new(Offset::new(offset), hash, payload.clone()).compute_hash());
            offset += 1;
        }
        Self {
            next_offset: offset,
            hash: hash.map(|hash| *hash.as_bytes()),
        }
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hash {
            Some(hash) => write!(f, "{}@{}", self.next_offset, hex::encode(hash)),
            None => write!(f, "{}@empty", self.next_offset),
        }
    }
}

/// What a Raft log entry asks every replica to do to its store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create the stream `name` if there is none; answers its id either way, so a replica
    /// re-applying the entry after a restart answers what the others answered.
    CreateStream {
        /// The request this command answers.
        request: RequestId,
        /// The stream's name.
        name: String,
    },
    /// Append `events` to `stream` as one batch if its head is still `prev`.
    Append {
        /// The request this command answers.
        request: RequestId,
        /// The stream's id.
        stream: u64,
        /// The head the leader saw when it proposed, having applied the log up to `read_at`.
        prev: Head,
        /// The log index the leader had applied when it read `prev`. A replica whose head is
        /// not `prev` rejects the batch ([`Rejection::StaleHead`]) if the stream changed after
        /// this index, as every replica does; if it did not, this replica's store differs from
        /// the leader's, and it stops ([`crate::Divergence`]).
        read_at: u64,
        /// The head the leader computed for after the batch: a replica that computes another
        /// stops applying ([`crate::Divergence`]).
        expected: Head,
        /// The events, in order.
        #[serde(with = "hex_events")]
        events: Vec<Bytes>,
    },
    /// Several requests in one log entry, applied in order as if each were an entry of its
    /// own at this index, each answered once under its own request id (the leader coalesces
    /// concurrent writes: docs/REPLICATION.md, section "Many writes in flight"). An append
    /// whose stream an earlier append of the batch changed was proposed against the head
    /// that one leaves; if it did not apply now, the later ones on that stream are stale.
    Batch(Vec<Command>),
    /// Keep `note`, a checkpoint of `stream` the leader signed over state it had applied
    /// (committed), in every replica's store (`crate::replica_checkpoint`): a replica whose
    /// tree at `tree_size` has another root stops ([`crate::Divergence`]).
    PublishCheckpoint {
        /// The stream's id.
        stream: u64,
        /// Events the checkpoint covers.
        tree_size: u64,
        /// The root of the stream's tree over them.
        root: [u8; 32],
        /// The signed note (C2SP checkpoint), as the store keeps it.
        note: String,
    },
}

impl Command {
    /// The request this command answers; `None` for a [`Command::Batch`] (each of its
    /// commands answers its own) and a [`Command::PublishCheckpoint`] (applying it twice
    /// keeps the same note: nothing to answer once).
    #[must_use]
    pub fn request(&self) -> Option<RequestId> {
        match self {
            Command::CreateStream { request, .. } | Command::Append { request, .. } => {
                Some(*request)
            }
            Command::Batch(_) | Command::PublishCheckpoint { .. } => None,
        }
    }

    /// The bytes of the events this command carries (all its appends' events): what an
    /// entry of it holds in memory and in the log beyond a few hundred bytes.
    #[must_use]
    pub fn event_bytes(&self) -> u64 {
        match self {
            Command::Append { events, .. } => events.iter().map(|event| event.len() as u64).sum(),
            Command::Batch(commands) => commands.iter().map(Command::event_bytes).sum(),
            Command::CreateStream { .. } | Command::PublishCheckpoint { .. } => 0,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::CreateStream { request, name } => write!(f, "create {name:?} ({request})"),
            Command::Append {
                request,
                stream,
                prev,
                events,
                ..
            } => write!(
                f,
                "append {} events to stream {stream} at {} ({request})",
                events.len(),
                prev.next_offset
            ),
            Command::Batch(commands) => write!(f, "batch of {} commands", commands.len()),
            Command::PublishCheckpoint {
                stream, tree_size, ..
            } => write!(f, "checkpoint of stream {stream} at size {tree_size}"),
        }
    }
}

/// What applying a command answered; the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// An entry that carries no command (a membership change, a new leader's blank entry).
    None,
    /// The stream's id (created now or before).
    Stream {
        /// The stream's id.
        stream: u64,
    },
    /// The batch was appended.
    Appended {
        /// Offset of its first event.
        first_offset: u64,
        /// The stream's head after it.
        head: Head,
    },
    /// The command was refused, on every replica; nothing was written.
    Rejected(Rejection),
    /// The answers to a [`Command::Batch`], one per command, in order.
    Batch(Vec<Response>),
    /// The checkpoint of a [`Command::PublishCheckpoint`] is kept.
    CheckpointKept {
        /// Events it covers.
        tree_size: u64,
    },
}

/// Why every replica refused a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// The stream's head was no longer the one the leader proposed against (an entry of an
    /// earlier leader was applied in between, or an append before it in its batch did not
    /// apply). Not kept in the request table: the proposer retries with the current head.
    #[error("stream {stream}: changed since the leader read its head {prev}")]
    StaleHead {
        /// The stream.
        stream: u64,
        /// The head the command expected.
        prev: Head,
    },
    /// The stream's next offset is not the one the client expected (found by the leader
    /// before proposing).
    #[error("stream {stream}: next offset is {next_offset}, not the one expected")]
    OffsetConflict {
        /// The stream.
        stream: u64,
        /// Its next offset.
        next_offset: u64,
    },
    /// No stream has this id.
    #[error("no stream {stream}")]
    UnknownStream {
        /// The stream's id.
        stream: u64,
    },
    /// The store refused the command for its content (a bad name, an empty batch, an event
    /// too large); the same on every replica.
    #[error("refused: {reason}")]
    Invalid {
        /// The store's error, as text.
        reason: String,
    },
}

/// Events as hex strings in JSON (a byte array would be written as a list of numbers), and as
/// raw bytes in binary encodings (the server's Raft messages, `is_human_readable` false).
pub(crate) mod hex_events {
    use bytes::Bytes;
    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Raw<'a>(&'a [u8]);

    impl Serialize for Raw<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    struct RawBuf(Bytes);

    impl<'de> Deserialize<'de> for RawBuf {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Raw;
            impl<'de> Visitor<'de> for Raw {
                type Value = RawBuf;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an event's bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<RawBuf, E> {
                    Ok(RawBuf(Bytes::copy_from_slice(bytes)))
                }
                // Bytes of the input itself: a slice of its buffer when the decode shares one
                // (`crate::shared_events`).
                fn visit_borrowed_bytes<E: serde::de::Error>(
                    self,
                    bytes: &'de [u8],
                ) -> Result<RawBuf, E> {
                    Ok(RawBuf(crate::shared_events::event_bytes(bytes)))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<RawBuf, E> {
                    Ok(RawBuf(Bytes::from(bytes)))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBuf, A::Error> {
                    let mut bytes = Vec::new();
                    while let Some(byte) = seq.next_element::<u8>()? {
                        bytes.push(byte);
                    }
                    Ok(RawBuf(Bytes::from(bytes)))
                }
            }
            deserializer.deserialize_bytes(Raw)
        }
    }

    pub(crate) fn serialize<S: Serializer>(
        events: &[Bytes],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return serializer.collect_seq(events.iter().map(|event| Raw(event)));
        }
        let texts: Vec<String> = events.iter().map(hex::encode).collect();
        texts.serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Bytes>, D::Error> {
        if !deserializer.is_human_readable() {
            let raw = Vec::<RawBuf>::deserialize(deserializer)?;
            return Ok(raw.into_iter().map(|RawBuf(bytes)| bytes).collect());
        }
        let texts = Vec::<String>::deserialize(deserializer)?;
        texts
            .into_iter()
            .map(|text| {
                hex::decode(text)
                    .map(Bytes::from)
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_after_matches_the_store() {
        let store = kimberlite::Kimberlite::in_memory();
        let id = store.create_stream("s").unwrap();
        let events = vec![Bytes::from_static(b"a"), Bytes::from_static(b"bc")];
        let appended = store
            .append(id, events.clone(), kimberlite::ExpectedOffset::Any)
            .unwrap();
        let head = Head::default().after(&events);
        assert_eq!(head, Head::of(store.head(id).unwrap()));
        assert_eq!(head.hash, Some(*appended.head.as_bytes()));
        let more = vec![Bytes::from_static(b"d")];
        store
            .append(id, more.clone(), kimberlite::ExpectedOffset::Any)
            .unwrap();
        assert_eq!(head.after(&more), Head::of(store.head(id).unwrap()));
    }

    #[test]
    fn commands_round_trip_through_json() {
        let command = Command::Append {
            request: RequestId { client: 7, seq: 9 },
            stream: 3,
            prev: Head::default(),
            read_at: 4,
            expected: Head::default().after(&[Bytes::from_static(b"x")]),
            events: vec![Bytes::from_static(b"x"), Bytes::new()],
        };
        let text = serde_json::to_string(&command).unwrap();
        assert!(text.contains("\"78\""), "{text}");
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), command);
    }
}
