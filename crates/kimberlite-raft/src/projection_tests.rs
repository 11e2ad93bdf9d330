//! The projection's decision table, and a wrong projection applied: stale, not a halt.

use bytes::Bytes;
use kimberlite::{Kimberlite, StreamId};

use super::*;
use crate::command::{Command, Rejection, Response};
use crate::replica::{ApplyError, Ledger, Replica};

fn last(index: u64) -> Projection {
    Projection {
        index,
        ..Projection::default()
    }
}

#[test]
fn the_next_entry_is_built_on_the_last_one_only_if_nothing_follows_it_in_the_log() {
    // (last entry answered at commit, last log index) -> footing
    let table = [
        (None, 7, Footing::CatchUp(7)),
        (Some(7), 8, Footing::CatchUp(8)),
        // The metrics may not show the entry yet: the whole log up to it is awaited.
        (Some(7), 6, Footing::CatchUp(7)),
        (Some(7), 7, Footing::Projected(6)),
    ];
    for (index, last_log_index, expected) in table {
        let last = index.map(last);
        assert_eq!(
            footing(last.as_ref(), last_log_index),
            expected,
            "last {index:?}, log {last_log_index}"
        );
    }
    // (entry index, applied) -> its heads over the applied state
    for (applied, over) in [(5, false), (6, true), (7, false), (8, false)] {
        assert_eq!(last(7).over(applied), over, "applied {applied}");
    }
}

fn request(seq: u64) -> RequestId {
    RequestId { client: 5, seq }
}

fn append(seq: u64, stream: u64, prev: Head, read_at: u64, text: &str) -> Command {
    let events = vec![Bytes::from(text.to_owned())];
    Command::Append {
        request: request(seq),
        stream,
        prev,
        read_at,
        expected: prev.after(&events),
        events,
    }
}

fn expected(command: &Command) -> Head {
    match command {
        Command::Append { expected, .. } => *expected,
        _ => panic!("an append"),
    }
}

/// A replica with stream "s" (index 1), request 10 appended to it (index 2), and entry 3, a
/// retry of request 10 the leader took for certain: the table answers it, nothing is
/// appended, and the leader's projection of "s" after entry 3 is wrong. Returns the replica,
/// the stream and the projected head.
fn wrongly_projected() -> (Replica, u64, Head) {
    let mut replica = Replica::new(Kimberlite::in_memory(), Ledger::default());
    let create = Command::CreateStream {
        request: request(1),
        name: "s".into(),
    };
    let Ok(Response::Stream { stream }) = replica.apply(1, &create) else {
        panic!("stream created")
    };
    let first = append(10, stream, Head::default(), 1, "a");
    let head = expected(&first);
    replica.apply(2, &Command::Batch(vec![first])).unwrap();
    let retry = append(10, stream, head, 2, "a");
    let projected = expected(&retry);
    let Ok(Response::Batch(answers)) = replica.apply(3, &Command::Batch(vec![retry])) else {
        panic!("a batch's answers")
    };
    assert!(matches!(
        answers.as_slice(),
        [Response::Appended {
            first_offset: 0,
            ..
        }]
    ));
    (replica, stream, projected)
}

#[test]
fn an_append_on_a_wrong_projection_is_stale_on_every_replica_not_a_divergence() {
    let (mut replica, stream, projected) = wrongly_projected();
    let next = vec![append(11, stream, projected, 3, "b")];
    let projected = Command::Projected {
        through: 3,
        commands: next,
    };
    let Ok(Response::Batch(answers)) = replica.apply(4, &projected) else {
        panic!("a batch's answers")
    };
    assert!(matches!(
        answers.as_slice(),
        [Response::Rejected(Rejection::StaleHead { .. })]
    ));
    let head = Head::of(replica.store().head(StreamId::new(stream)).unwrap());
    assert_eq!(head.next_offset, 1, "nothing appended");
    assert!(
        replica.ledger().requests.get(request(11)).is_none(),
        "retried"
    );
    // The same append in a plain batch says this replica's store differs: it stops.
    let (mut replica, stream, projected) = wrongly_projected();
    let next = vec![append(11, stream, projected, 3, "b")];
    assert!(matches!(
        replica.apply(4, &Command::Batch(next)),
        Err(ApplyError::Diverged(_))
    ));
}

#[test]
fn an_append_on_a_right_projection_appends() {
    let (mut replica, stream, _) = wrongly_projected();
    let head = Head::of(replica.store().head(StreamId::new(stream)).unwrap());
    let entry = append(12, stream, head, 3, "c");
    let first = expected(&entry);
    replica.apply(4, &Command::Batch(vec![entry])).unwrap();
    let next = Command::Projected {
        through: 4,
        commands: vec![append(13, stream, first, 4, "d")],
    };
    let Ok(Response::Batch(answers)) = replica.apply(5, &next) else {
        panic!("a batch's answers")
    };
    assert!(matches!(
        answers.as_slice(),
        [Response::Appended {
            first_offset: 2,
            ..
        }]
    ));
}

#[test]
fn a_store_that_differs_is_still_found_in_a_projected_batch() {
    let (mut replica, stream, _) = wrongly_projected();
    let head = Head::of(replica.store().head(StreamId::new(stream)).unwrap());
    replica
        .apply(4, &Command::Batch(vec![append(12, stream, head, 3, "c")]))
        .unwrap();
    // Entry 4 appended to the stream, but the head is not the one the leader projected.
    let other = Head {
        next_offset: 2,
        hash: Some([7; 32]),
    };
    let next = Command::Projected {
        through: 4,
        commands: vec![append(13, stream, other, 4, "d")],
    };
    assert!(matches!(
        replica.apply(5, &next),
        Err(ApplyError::Diverged(_))
    ));
}
