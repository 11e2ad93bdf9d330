//! The bytes of the Raft messages between nodes: openraft's serde types in postcard's compact
//! binary form, the same on both sides (`transport.rs` sends, `raft_routes.rs` receives).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The media type of every Raft route's body and answer.
pub(crate) const CONTENT_TYPE: &str = "application/x-kimberlite-raft";

/// Why a body could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("raft message: {0}")]
pub(crate) struct WireError(#[from] postcard::Error);

/// `value`'s bytes.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    Ok(postcard::to_stdvec(value)?)
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
                Entry {
                    log_id: log_id(3, 8),
                    payload: EntryPayload::Normal(Command::Append {
                        request: RequestId { client: 9, seq: 4 },
                        stream: 2,
                        prev: Head::default(),
                        read_at: 7,
                        expected: Head::default().after(&events),
                        events: events.clone(),
                    }),
                },
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
    fn garbage_and_trailing_bytes_are_refused() {
        assert!(decode::<VoteRequest<u64>>(&[0xff; 3]).is_err());
        assert!(decode::<VoteRequest<u64>>(&[]).is_err());
        let vote = VoteRequest::new(Vote::new(4, 2), None);
        let mut bytes = encode(&vote).unwrap();
        bytes.push(0);
        assert!(decode::<VoteRequest<u64>>(&bytes).is_err());
    }
}
