//! [`Replica::apply`]: answers once, stale views, divergence before and after a batch, and
//! entries applied again after a restart.

use bytes::Bytes;
use kimberlite::{ExpectedOffset, Kimberlite, StreamId};

use crate::command::{Command, Head, Rejection, RequestId, Response};
use crate::replica::{ApplyError, DivergencePoint, Ledger, Replica};

fn request(seq: u64) -> RequestId {
    RequestId { client: 3, seq }
}

fn events(texts: &[&'static str]) -> Vec<Bytes> {
    texts
        .iter()
        .map(|text| Bytes::from_static(text.as_bytes()))
        .collect()
}

/// A replica with stream 1 named "s", created at log index 1.
fn replica() -> (Replica, u64) {
    let mut replica = Replica::new(Kimberlite::in_memory(), Ledger::default());
    let create = Command::CreateStream {
        request: request(0),
        name: "s".into(),
    };
    let Response::Stream { stream } = replica.apply(1, &create).unwrap() else {
        panic!("stream created")
    };
    (replica, stream)
}

fn append(seq: u64, stream: u64, prev: Head, read_at: u64, batch: &[&'static str]) -> Command {
    let events = events(batch);
    Command::Append {
        request: request(seq),
        stream,
        prev,
        read_at,
        expected: prev.after(&events),
        events,
    }
}

fn head(replica: &Replica, stream: u64) -> Head {
    Head::of(replica.store().head(StreamId::new(stream)).unwrap())
}

#[test]
fn a_request_applied_twice_is_answered_once() {
    let (mut replica, stream) = replica();
    let command = append(1, stream, Head::default(), 1, &["a", "b"]);
    let first = replica.apply(2, &command).unwrap();
    assert!(matches!(
        first,
        Response::Appended {
            first_offset: 0,
            ..
        }
    ));
    // The same request again, proposed by a later leader against the head it saw then.
    let retry = append(1, stream, head(&replica, stream), 2, &["a", "b"]);
    assert_eq!(replica.apply(3, &retry).unwrap(), first);
    assert_eq!(head(&replica, stream).next_offset, 2);
}

#[test]
fn a_stream_changed_after_the_leader_read_it_is_stale_everywhere() {
    let (mut replica, stream) = replica();
    // Two proposals read at index 1; the first changes the stream at index 2.
    replica
        .apply(2, &append(1, stream, Head::default(), 1, &["a"]))
        .unwrap();
    let stale = replica
        .apply(3, &append(2, stream, Head::default(), 1, &["b"]))
        .unwrap();
    assert!(matches!(
        stale,
        Response::Rejected(Rejection::StaleHead { .. })
    ));
    // Not an answer: the proposer's retry with the current head is applied.
    let retry = append(2, stream, head(&replica, stream), 3, &["b"]);
    assert!(matches!(
        replica.apply(4, &retry).unwrap(),
        Response::Appended {
            first_offset: 1,
            ..
        }
    ));
}

#[test]
fn a_store_that_differs_before_the_batch_stops_the_replica() {
    let (mut replica, stream) = replica();
    // Written around Raft: the leader (read at index 1) never saw it.
    replica
        .store()
        .append(StreamId::new(stream), ["intruder"], ExpectedOffset::Any)
        .unwrap();
    let error = replica
        .apply(2, &append(1, stream, Head::default(), 1, &["a"]))
        .unwrap_err();
    let ApplyError::Diverged(divergence) = error else {
        panic!("divergence expected, got {error}")
    };
    assert_eq!(divergence.point, DivergencePoint::Before);
    assert_eq!(
        (divergence.index, divergence.expected),
        (2, Head::default())
    );
    assert_eq!(divergence.computed.next_offset, 1);
}

#[test]
fn a_batch_that_hashes_differently_stops_the_replica() {
    let (mut replica, stream) = replica();
    let mut command = append(1, stream, Head::default(), 1, &["a"]);
    if let Command::Append { expected, .. } = &mut command {
        expected.hash.as_mut().unwrap()[0] ^= 1;
    }
    let error = replica.apply(2, &command).unwrap_err();
    let ApplyError::Diverged(divergence) = error else {
        panic!("divergence expected, got {error}")
    };
    assert_eq!(divergence.point, DivergencePoint::After);
    assert_ne!(divergence.expected, divergence.computed);
}

#[test]
fn entries_applied_again_after_a_restart_answer_as_the_first_time() {
    let (mut replica, stream) = replica();
    let saved = replica.ledger().clone();
    let first = append(1, stream, Head::default(), 1, &["a"]);
    let stale = append(2, stream, Head::default(), 1, &["b"]);
    let second = append(3, stream, Head::default().after(&events(&["a"])), 2, &["c"]);
    let answers: Vec<Response> = [(2, &first), (3, &stale), (4, &second)]
        .into_iter()
        .map(|(index, command)| replica.apply(index, command).unwrap())
        .collect();
    // A restart: the store kept every batch, the saved ledger is from before them.
    let store = replica.store().clone();
    let mut restarted = Replica::new(store, saved);
    let again: Vec<Response> = [(2, &first), (3, &stale), (4, &second)]
        .into_iter()
        .map(|(index, command)| restarted.apply(index, command).unwrap())
        .collect();
    assert_eq!(again, answers);
    assert_eq!(head(&restarted, stream).next_offset, 2);
    assert_eq!(restarted.ledger(), replica.ledger());
}

#[test]
fn an_event_that_looks_sealed_is_refused_alike_and_the_replica_goes_on() {
    let (mut replica, stream) = replica();
    // A leader that did not check proposed a plain event starting with the sealed marker:
    // the store refuses it with nothing written, the same on every replica.
    let forged = append(1, stream, Head::default(), 1, &["\0KBSEALforged"]);
    let answer = replica.apply(2, &forged).unwrap();
    assert!(
        matches!(
            answer,
            Response::Rejected(Rejection::Invalid { ref reason }) if reason.contains("sealed")
        ),
        "{answer:?}"
    );
    assert_eq!(head(&replica, stream), Head::default());
    // The retry is answered the same; the next append goes on.
    assert_eq!(replica.apply(3, &forged).unwrap(), answer);
    let next = replica
        .apply(4, &append(2, stream, Head::default(), 3, &["a"]))
        .unwrap();
    assert!(matches!(
        next,
        Response::Appended {
            first_offset: 0,
            ..
        }
    ));
}
