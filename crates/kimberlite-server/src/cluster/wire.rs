//! The bytes of the Raft messages between nodes: openraft's serde types in postcard's compact
//! binary form, the same on both sides (`transport.rs` sends, `raft_routes.rs` receives).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The media type of every Raft route's body and answer.
pub(crate) const CONTENT_TYPE: &str = "application/x-kimberlite-raft";

/// Why a body could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("raft message: {0}")]
pub(crate) struct WireError(#[from] postcard::Error);

/// Bodies up to this size are copied out of the buffer they arrived in before their events
/// are cut from them ([`decode_shared`]).
const COPIED_BODY_MAX: usize = 64 * 1024;

/// `value`'s bytes, in one allocation of their exact size: a message of a batch's events grown
/// by doubling would copy them again at each step, into fresh pages.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let size = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())?;
    Ok(postcard::serialize_with_flavor(
        value,
        Sized(Vec::with_capacity(size)),
    )?)
}

/// postcard's output into a `Vec` sized beforehand, a slice at a time.
struct Sized(Vec<u8>);

impl postcard::ser_flavors::Flavor for Sized {
    type Output = Vec<u8>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// The value `body` holds, its events slices of `body` (`kimberlite_raft::decode_sharing`),
/// not a copy each. A small body is copied first, once: it may be a slice of the connection's
/// read buffer, which its events would keep alive (as the append route's bodies,
/// `api/body.rs`).
pub(crate) fn decode_shared<T: DeserializeOwned>(body: &Bytes) -> Result<T, WireError> {
    let copied;
    let body = if body.len() <= COPIED_BODY_MAX {
        copied = Bytes::copy_from_slice(body);
        &copied
    } else {
        body
    };
    kimberlite_raft::decode_sharing(body, || decode(body))
}

/// The value `bytes` hold; an error for bytes that are not one whole value.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if !rest.is_empty() {
        return Err(WireError(postcard::Error::DeserializeBadEncoding));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kimberlite_raft::openraft::raft::{AppendEntriesRequest, VoteRequest};
    use kimberlite_raft::openraft::{
        BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote,
    };
    use kimberlite_raft::{Command, Head, RequestId, TypeConfig};

    fn log_id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    /// Entry 8 of term 3: client 9's append of `events` to stream 2.
    fn append_entry(events: &[Bytes]) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(3, 8),
            payload: EntryPayload::Normal(Command::Append {
                request: RequestId { client: 9, seq: 4 },
                stream: 2,
                prev: Head::default(),
                read_at: 7,
                expected: Head::default().after(events),
                events: events.to_vec(),
            }),
        }
    }

    #[test]
    fn raft_messages_round_trip() {
        let events = vec![Bytes::from_static(b"x"), Bytes::from(vec![0u8; 300])];
        let members = Membership::new(
            vec![[1, 2, 3].into_iter().collect()],
            [
                (1, BasicNode::new("http://a")),
                (2, BasicNode::new("http://b")),
            ]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
        );
        let request = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id(2, 7)),
            entries: vec![
                append_entry(&events),
                Entry {
                    log_id: log_id(3, 9),
                    payload: EntryPayload::Membership(members),
                },
                Entry {
                    log_id: log_id(3, 10),
                    payload: EntryPayload::Blank,
                },
            ],
            leader_commit: Some(log_id(3, 8)),
        };
        let bytes = encode(&request).unwrap();
        let back: AppendEntriesRequest<TypeConfig> = decode(&bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{request:?}"));
        // Events travel as raw bytes, not as hex text.
        assert!(bytes.len() < 300 * 2, "{} bytes", bytes.len());

        let vote = VoteRequest::new(Vote::new(4, 2), Some(log_id(3, 10)));
        let back: VoteRequest<u64> = decode(&encode(&vote).unwrap()).unwrap();
        assert_eq!(back, vote);
    }

    #[test]
    fn events_decoded_from_a_body_share_it() {
        let events = vec![Bytes::from(vec![7u8; 300]); 400];
        let request = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id(2, 7)),
            entries: vec![append_entry(&events)],
            leader_commit: Some(log_id(3, 8)),
        };
        let encoded = encode(&request).unwrap();
        assert_eq!(encoded.len(), encoded.capacity());
        assert_eq!(encoded, postcard::to_stdvec(&request).unwrap());
        let body = Bytes::from(encoded);
        assert!(body.len() > COPIED_BODY_MAX);
        let back: AppendEntriesRequest<TypeConfig> = decode_shared(&body).unwrap();
        assert_eq!(format!("{back:?}"), format!("{request:?}"));
        let Some(EntryPayload::Normal(Command::Append {
            events: decoded, ..
        })) = back.entries.first().map(|entry| &entry.payload)
        else {
            panic!("an append");
        };
        let inside = body.as_ptr_range();
        for event in decoded {
            assert!(
                inside.contains(&event.as_ptr()),
                "an event copied out of the body"
            );
        }
        // A small body is copied first: no event keeps the buffer it arrived in alive.
        let small: Vec<Bytes> = vec![Bytes::from_static(b"abc"); 3];
        let small = Command::Append {
            request: RequestId { client: 1, seq: 1 },
            stream: 2,
            prev: Head::default(),
            read_at: 0,
            expected: Head::default().after(&small),
            events: small,
        };
        let body = Bytes::from(encode(&small).unwrap());
        let back: Command = decode_shared(&body).unwrap();
        assert_eq!(back, small);
        let Command::Append { events, .. } = back else {
            panic!("an append");
        };
        let inside = body.as_ptr_range();
        assert!(events.iter().all(|event| !inside.contains(&event.as_ptr())));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        assert!(decode::<VoteRequest<u64>>(&[0xff; 3]).is_err());
        assert!(decode::<VoteRequest<u64>>(&[]).is_err());
        let vote = VoteRequest::new(Vote::new(4, 2), None);
        let mut bytes = encode(&vote).unwrap();
        bytes.push(0);
        assert!(decode::<VoteRequest<u64>>(&bytes).is_err());
        assert!(decode_shared::<VoteRequest<u64>>(&Bytes::from(bytes)).is_err());
        assert!(decode_shared::<VoteRequest<u64>>(&Bytes::from_static(&[0xff; 3])).is_err());
    }
}
