//! [`Replica::apply`] of a [`Command::Batch`]: appends chained on one stream, each answered
//! once; an append before another in the batch that did not apply makes the later ones
//! stale, never a divergence; a batch applied again after a restart answers as the first time.

use bytes::Bytes;
use kimberlite::{ExpectedOffset, Kimberlite, StreamId};

use crate::command::{Command, Head, Rejection, RequestId, Response};
use crate::replica::{ApplyError, DivergencePoint, Ledger, Replica};

fn request(seq: u64) -> RequestId {
    RequestId { client: 5, seq }
}

/// A replica with streams "s" and "t", created at log index 1 and 2.
fn replica() -> (Replica, u64, u64) {
    let mut replica = Replica::new(Kimberlite::in_memory(), Ledger::default());
    let mut ids = Vec::new();
    for (seq, name) in [(100, "s"), (101, "t")] {
        let create = Command::CreateStream {
            request: request(seq),
            name: name.into(),
        };
        let Response::Stream { stream } = replica.apply(seq - 99, &create).unwrap() else {
            panic!("stream created")
        };
        ids.push(stream);
    }
    (replica, ids[0], ids[1])
}

/// Appends of one event each, chained from `head` as the leader chains them; all read at
/// `read_at`.
fn chain(stream: u64, mut head: Head, read_at: u64, appends: &[(u64, &str)]) -> Vec<Command> {
    appends
        .iter()
        .map(|&(seq, text)| {
            let events = vec![Bytes::from(text.to_owned())];
            let prev = head;
            head = prev.after(&events);
            Command::Append {
                request: request(seq),
                stream,
                prev,
                read_at,
                expected: head,
                events,
            }
        })
        .collect()
}

fn answers(response: Response) -> Vec<Response> {
    let Response::Batch(answers) = response else {
        panic!("a batch's answers expected, got {response:?}")
    };
    answers
}

fn first_offset(answer: &Response) -> Option<u64> {
    match answer {
        Response::Appended { first_offset, .. } => Some(*first_offset),
        _ => None,
    }
}

fn is_stale(answer: &Response) -> bool {
    matches!(answer, Response::Rejected(Rejection::StaleHead { .. }))
}

fn texts(replica: &Replica, stream: u64) -> Vec<String> {
    let events = replica
        .store()
        .read(StreamId::new(stream), 0.into(), u64::MAX)
        .unwrap();
    events
        .iter()
        .map(|event| String::from_utf8(event.payload.to_vec()).unwrap())
        .collect()
}

#[test]
fn appends_chained_in_a_batch_are_each_applied_and_answered_once() {
    let (mut replica, s, t) = replica();
    let mut commands = chain(s, Head::default(), 2, &[(1, "a"), (2, "b"), (3, "c")]);
    commands.extend(chain(t, Head::default(), 2, &[(4, "x")]));
    let batch = Command::Batch(commands);
    let answered = answers(replica.apply(3, &batch).unwrap());
    let offsets: Vec<Option<u64>> = answered.iter().map(first_offset).collect();
    assert_eq!(offsets, [Some(0), Some(1), Some(2), Some(0)]);
    assert_eq!(texts(&replica, s), ["a", "b", "c"]);
    // Each request is answered from the table when sent again, in a batch or alone.
    assert_eq!(answers(replica.apply(4, &batch).unwrap()), answered);
    assert_eq!(texts(&replica, s), ["a", "b", "c"]);
    assert_eq!(texts(&replica, t), ["x"]);
}

#[test]
fn an_append_answered_before_makes_the_later_ones_on_its_stream_stale() {
    let (mut replica, s, t) = replica();
    let once = chain(s, Head::default(), 2, &[(1, "a")]);
    replica.apply(3, &Command::Batch(once)).unwrap();
    // A leader that did not know request 1 was answered chains 2 after it; t is unaffected.
    let head = Head::of(replica.store().head(StreamId::new(s)).unwrap());
    let mut commands = chain(s, head, 3, &[(1, "a"), (2, "b")]);
    commands.extend(chain(t, Head::default(), 3, &[(3, "x")]));
    let answered = answers(replica.apply(4, &Command::Batch(commands)).unwrap());
    assert_eq!(first_offset(&answered[0]), Some(0), "the first answer");
    assert!(is_stale(&answered[1]), "{:?}", answered[1]);
    assert_eq!(first_offset(&answered[2]), Some(0));
    assert_eq!(texts(&replica, s), ["a"]);
    // Not an answer: request 2 proposed again against the current head is applied.
    let again = chain(s, head, 4, &[(2, "b")]);
    let answered = answers(replica.apply(5, &Command::Batch(again)).unwrap());
    assert_eq!(first_offset(&answered[0]), Some(1));
}

#[test]
fn a_stale_append_makes_the_later_ones_on_its_stream_stale() {
    let (mut replica, s, _) = replica();
    // Two leaders read the stream at index 2; the first's entry changes it at index 3.
    replica
        .apply(
            3,
            &Command::Batch(chain(s, Head::default(), 2, &[(1, "a")])),
        )
        .unwrap();
    let late = chain(s, Head::default(), 2, &[(2, "b"), (3, "c")]);
    let answered = answers(replica.apply(4, &Command::Batch(late)).unwrap());
    assert!(answered.iter().all(is_stale), "{answered:?}");
    assert_eq!(texts(&replica, s), ["a"]);
}

#[test]
fn a_store_that_differs_stops_the_replica_at_the_batch() {
    let (mut replica, s, _) = replica();
    replica
        .store()
        .append(StreamId::new(s), ["intruder"], ExpectedOffset::Any)
        .unwrap();
    let batch = Command::Batch(chain(s, Head::default(), 2, &[(1, "a"), (2, "b")]));
    let error = replica.apply(3, &batch).unwrap_err();
    let ApplyError::Diverged(divergence) = error else {
        panic!("divergence expected, got {error}")
    };
    assert_eq!(
        (divergence.index, divergence.point),
        (3, DivergencePoint::Before)
    );
}

#[test]
fn a_batch_applied_again_after_a_restart_answers_as_the_first_time() {
    let (mut replica, s, t) = replica();
    let saved = replica.ledger().clone();
    let mut first = chain(s, Head::default(), 2, &[(1, "a"), (2, "b")]);
    first.extend(chain(t, Head::default(), 2, &[(3, "x")]));
    let after_first = Head::default().after(&[Bytes::from("a")]);
    let after_first = after_first.after(&[Bytes::from("b")]);
    let second = chain(s, after_first, 3, &[(4, "c"), (5, "d")]);
    let entries = [(3, Command::Batch(first)), (4, Command::Batch(second))];
    let answered: Vec<Response> = entries
        .iter()
        .map(|(index, command)| replica.apply(*index, command).unwrap())
        .collect();
    // A restart: the store kept every batch, the saved ledger is from before them.
    let mut restarted = Replica::new(replica.store().clone(), saved);
    let again: Vec<Response> = entries
        .iter()
        .map(|(index, command)| restarted.apply(*index, command).unwrap())
        .collect();
    assert_eq!(again, answered);
    assert_eq!(texts(&restarted, s), ["a", "b", "c", "d"]);
    assert_eq!(restarted.ledger(), replica.ledger());
}

#[test]
fn a_batch_inside_a_batch_is_refused() {
    let (mut replica, s, _) = replica();
    let inner = Command::Batch(chain(s, Head::default(), 2, &[(1, "a")]));
    let answered = answers(replica.apply(3, &Command::Batch(vec![inner])).unwrap());
    assert!(
        matches!(answered[0], Response::Rejected(Rejection::Invalid { .. })),
        "{answered:?}"
    );
    assert!(texts(&replica, s).is_empty());
}

#[test]
fn a_run_of_appends_answers_as_entries_of_their_own_would() {
    let appends = [(1, "a"), (2, "b"), (3, "c")];
    let (mut together, s, _) = replica();
    let (mut alone, _, _) = replica();
    let answered = answers(
        together
            .apply(3, &Command::Batch(chain(s, Head::default(), 2, &appends)))
            .unwrap(),
    );
    for (index, command) in (3..).zip(chain(s, Head::default(), 2, &appends)) {
        let one = answers(alone.apply(index, &Command::Batch(vec![command])).unwrap());
        assert_eq!(one[..], answered[index as usize - 3..][..1]);
    }
    assert_eq!(texts(&together, s), texts(&alone, s));
    let head = |replica: &Replica| replica.store().head(StreamId::new(s)).unwrap();
    assert_eq!(head(&together), head(&alone));
}

#[test]
fn a_run_writes_nothing_past_an_append_whose_head_differs() {
    let (mut replica, s, _) = replica();
    let mut commands = chain(
        s,
        Head::default(),
        2,
        &[(1, "a"), (2, "b"), (3, "c"), (4, "d")],
    );
    // The third carries other events than the head its leader computed says.
    if let Command::Append { events, .. } = &mut commands[2] {
        *events = vec![Bytes::from_static(b"forged")];
    }
    let error = replica.apply(3, &Command::Batch(commands)).unwrap_err();
    let ApplyError::Diverged(divergence) = error else {
        panic!("divergence expected, got {error}")
    };
    assert_eq!(
        (
            divergence.index,
            divergence.point,
            divergence.computed.next_offset
        ),
        (3, DivergencePoint::After, 3)
    );
    assert_eq!(texts(&replica, s), ["a", "b", "forged"]);
}
