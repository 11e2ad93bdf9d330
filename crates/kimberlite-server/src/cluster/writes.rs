//! Writes in cluster mode: through the leader's `Node` (a Raft log entry each), with the
//! client's request id, so that a retry after a lost answer gets the first answer.

use axum::http::HeaderMap;
use bytes::Bytes;
use kimberlite::{ExpectedOffset, Offset};
use kimberlite_raft::{Appended, Rejection, RequestId, Response, WriteError};

use super::node::{Cluster, REQUEST_ID_HEADER};
use crate::error::ApiError;

/// The request id of a write: the client's `Kimberlite-Request-Id: <client id, 1 to 32 hex
/// digits>-<sequence, decimal>`, or a new one (a retry of it cannot then be recognised).
pub(crate) fn request_id(headers: &HeaderMap) -> Result<RequestId, ApiError> {
    let Some(value) = headers.get(REQUEST_ID_HEADER) else {
        let mut client = [0u8; 8];
        getrandom::fill(&mut client).map_err(|error| {
            ApiError::Internal(format!("no randomness for a request id: {error}"))
        })?;
        return Ok(RequestId {
            client: u64::from_le_bytes(client),
            seq: 0,
        });
    };
    let bad = || {
        ApiError::BadRequest(format!(
            "{REQUEST_ID_HEADER} must be `<client id: 1 to 32 hex digits>-<sequence: decimal>`"
        ))
    };
    let text = value.to_str().map_err(|_| bad())?;
    let (client, seq) = text.trim().split_once('-').ok_or_else(bad)?;
    if client.is_empty() || client.len() > 32 || !client.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let client = u128::from_str_radix(client, 16).map_err(|_| bad())?;
    let seq: u64 = seq.parse().map_err(|_| bad())?;
    // The table keys on 64 bits: both halves of a 128-bit id count.
    let folded = (client >> 64) as u64 ^ client as u64;
    Ok(RequestId {
        client: folded,
        seq,
    })
}

/// A write that did not happen, or may have, as an answer.
pub(crate) fn write_error(cluster: &Cluster, stream: &str, error: WriteError) -> ApiError {
    match error {
        WriteError::NotLeader { leader } => ApiError::NotLeader {
            url: leader
                .filter(|&leader| leader != cluster.node().id())
                .and_then(|leader| cluster.url_of(leader)),
        },
        WriteError::Rejected(rejection) => rejected(stream, rejection),
        WriteError::Raft(reason) => ApiError::OutcomeUnknown(reason),
    }
}

fn rejected(stream: &str, rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::OffsetConflict { next_offset, .. } => {
            ApiError::Store(kimberlite::Error::OffsetConflict {
                name: stream.to_owned(),
                expected: ExpectedOffset::Any,
                actual: Offset::new(next_offset),
            })
        }
        Rejection::UnknownStream { .. } => ApiError::Store(kimberlite::Error::StreamNotFound {
            name: stream.to_owned(),
        }),
        Rejection::Invalid { reason } => ApiError::BadRequest(reason),
        // Nothing was written: the same request may be sent again.
        stale @ Rejection::StaleHead { .. } => {
            ApiError::Unavailable(format!("{stale}; nothing was written, send it again"))
        }
    }
}

/// Creates the stream `name` through the leader. A stream that already exists is a 409
/// unless this request (a retry) created it.
pub(crate) async fn create_stream(
    cluster: &Cluster,
    request: RequestId,
    name: &str,
) -> Result<(), ApiError> {
    let retry = cluster.node().state_machine().answered(request).is_some();
    let (exists, _) = cluster
        .node()
        .with_store(|store| store.stream(name).is_some());
    if exists && !retry {
        return Err(ApiError::Store(kimberlite::Error::StreamExists {
            name: name.to_owned(),
        }));
    }
    cluster
        .node()
        .create_stream(request, name)
        .await
        .map(|_| ())
        .map_err(|error| write_error(cluster, name, error))
}

/// Appends `events` to `name` through the leader.
pub(crate) async fn append(
    cluster: &Cluster,
    request: RequestId,
    name: &str,
    events: Vec<Bytes>,
    expected: ExpectedOffset,
) -> Result<Appended, ApiError> {
    if !cluster.is_leader() {
        return Err(write_error(
            cluster,
            name,
            WriteError::NotLeader {
                leader: cluster.leader(),
            },
        ));
    }
    // A retry whose first attempt was applied gets its first answer, even if the stream's
    // head has moved on since (the expected offset was checked the first time).
    let expected = match cluster.node().state_machine().answered(request) {
        Some(Response::Appended { .. }) => ExpectedOffset::Any,
        _ => expected,
    };
    let (id, _) = cluster.node().with_store(|store| store.stream(name));
    let id = id.ok_or_else(|| {
        ApiError::Store(kimberlite::Error::StreamNotFound {
            name: name.to_owned(),
        })
    })?;
    cluster
        .node()
        .append(request, id.as_u64(), events, expected)
        .await
        .map_err(|error| match error {
            WriteError::Rejected(Rejection::OffsetConflict { next_offset, .. }) => {
                ApiError::Store(kimberlite::Error::OffsetConflict {
                    name: name.to_owned(),
                    expected,
                    actual: Offset::new(next_offset),
                })
            }
            other => write_error(cluster, name, other),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, value.parse().unwrap());
        headers
    }

    #[test]
    fn request_ids_parse_and_bad_ones_are_refused() {
        let id = request_id(&headers("00000000000000010000000000000002-7")).unwrap();
        assert_eq!(id, RequestId { client: 3, seq: 7 });
        assert_eq!(
            request_id(&headers("ff-0")).unwrap(),
            RequestId {
                client: 0xff,
                seq: 0
            }
        );
        let too_long = format!("{}-1", "f".repeat(33));
        for bad in ["", "-1", "xyz-1", "ff", "ff-", "ff--1", &too_long, "ff-1.5"] {
            assert!(
                matches!(request_id(&headers(bad)), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
        let fresh = request_id(&HeaderMap::new()).unwrap();
        assert_eq!(fresh.seq, 0);
    }
}
