//! Which appends of an entry the leader answers once the entry is committed, before it applies
//! it (docs/REPLICATION.md, section "Acknowledgements and reads"). The proposer builds an
//! entry only once it has applied its whole log, in the term it proposes in, so it knows the
//! state the entry is applied to: no other leader's entry comes between, and an entry of its
//! own that does (a stream created, whose request id could answer one of ours from the
//! table) keeps the whole entry from being answered early (`crate::commit_watch`). An append
//! is certain when applying it can only answer `Appended { first_offset: prev.next_offset,
//! head: expected }` (or stop the node: a store failure, a divergence, after which the entry
//! is still committed on a majority). By whether its request id is in the ledger, its events
//! and its `prev`:
//!
//! | in ledger | events               | `prev` is                         | certain               |
//! |-----------|----------------------|-----------------------------------|-----------------------|
//! | yes       | any                  | any                               | no: the table answers |
//! | no        | none, or refused (a) | any                               | no: `Invalid` (b)     |
//! | no        | some                 | the applied head                  | yes                   |
//! | no        | some                 | left by a certain earlier part    | yes                   |
//! | no        | some                 | left by an uncertain earlier part | no: `StaleHead` (c)   |
//!
//! (a) One event the store refuses (sealed-looking). (b) The leader refuses both first. (c) If
//! that one does not append.
//!
//! A request id repeated in the waiting appends joins its first part (one answer), so a part
//! is never answered by an earlier one of its batch.

use bytes::Bytes;

/// Where a part's `prev` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    /// The stream's head as the leader applied it.
    Applied,
    /// The head an earlier part of the batch, itself certain, leaves.
    CertainPart,
    /// The head an earlier part of the batch, not certain, leaves.
    UncertainPart,
}

/// Whether applying an append is certain to append it at `prev` (the table above).
pub(crate) fn certain(answered: bool, events: &[Bytes], basis: Basis) -> bool {
    !answered
        && !events.is_empty()
        && !events
            .iter()
            .any(|event| kimberlite::sealed::envelope::looks_sealed(event))
        && basis != Basis::UncertainPart
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use kimberlite::{Kimberlite, StreamId};

    use super::*;
    use crate::command::{Command, Head, Rejection, RequestId, Response};
    use crate::replica::{Ledger, Replica};

    const S: &str = "s";

    fn request(seq: u64) -> RequestId {
        RequestId { client: 9, seq }
    }

    /// A replica with streams "s" and "t" (log index 1 and 2) and one answered append to "s"
    /// (request 10, log index 3).
    fn replica() -> (Replica, u64, u64) {
        let mut replica = Replica::new(Kimberlite::in_memory(), Ledger::default());
        let mut ids = Vec::new();
        for (index, name) in [(1, S), (2, "t")] {
            let create = Command::CreateStream {
                request: request(100 + index),
                name: name.into(),
            };
            let Ok(Response::Stream { stream }) = replica.apply(index, &create) else {
                panic!("stream created")
            };
            ids.push(stream);
        }
        let mut heads = BTreeMap::new();
        let first = parts(&replica, &mut heads, &[(10, ids[0], "a")]);
        replica.apply(3, &Command::Batch(first)).unwrap();
        (replica, ids[0], ids[1])
    }

    fn head(replica: &Replica, stream: u64) -> Head {
        Head::of(replica.store().head(StreamId::new(stream)).unwrap())
    }

    /// The leader's appends of one event each, chained per stream from `heads` (or the
    /// replica's) as the proposer chains them.
    fn parts(
        replica: &Replica,
        heads: &mut BTreeMap<u64, Head>,
        appends: &[(u64, u64, &str)],
    ) -> Vec<Command> {
        appends
            .iter()
            .map(|&(seq, stream, text)| {
                let events = vec![Bytes::from(text.to_owned())];
                let prev = *heads.entry(stream).or_insert_with(|| head(replica, stream));
                let expected = prev.after(&events);
                heads.insert(stream, expected);
                Command::Append {
                    request: request(seq),
                    stream,
                    prev,
                    read_at: 3,
                    expected,
                    events,
                }
            })
            .collect()
    }

    /// The proposer's decision for each part of `batch` on `replica`.
    fn decide(replica: &Replica, batch: &[Command]) -> Vec<bool> {
        let mut chained: BTreeMap<u64, bool> = BTreeMap::new();
        batch
            .iter()
            .map(|command| {
                let Command::Append {
                    request,
                    stream,
                    events,
                    ..
                } = command
                else {
                    panic!("appends only")
                };
                let basis = match chained.get(stream) {
                    None => Basis::Applied,
                    Some(true) => Basis::CertainPart,
                    Some(false) => Basis::UncertainPart,
                };
                let answered = replica.ledger().requests.get(*request).is_some();
                let certain = certain(answered, events, basis);
                chained.insert(*stream, certain);
                certain
            })
            .collect()
    }

    /// Applies `batch` at index 4; checks each certain part is answered `Appended` at its
    /// `prev` with its `expected` head; returns the answers.
    fn apply_checked(
        replica: &mut Replica,
        batch: Vec<Command>,
        certain: &[bool],
    ) -> Vec<Response> {
        let Ok(Response::Batch(answers)) = replica.apply(4, &Command::Batch(batch.clone())) else {
            panic!("a batch's answers")
        };
        for ((command, answer), &certain) in batch.iter().zip(&answers).zip(certain) {
            let Command::Append { prev, expected, .. } = command else {
                continue;
            };
            let appended = Response::Appended {
                first_offset: prev.next_offset,
                head: *expected,
            };
            if certain {
                assert_eq!(*answer, appended, "a certain part");
            }
        }
        answers
    }

    #[test]
    fn parts_from_the_applied_head_and_chained_on_certain_parts_are_certain() {
        let (mut replica, s, t) = replica();
        let batch = parts(
            &replica,
            &mut BTreeMap::new(),
            &[(11, s, "b"), (12, t, "x"), (13, s, "c"), (14, s, "d")],
        );
        let certain = decide(&replica, &batch);
        assert_eq!(certain, [true; 4]);
        apply_checked(&mut replica, batch, &certain);
    }

    #[test]
    fn a_retry_and_the_parts_chained_on_it_are_not_certain() {
        let (mut replica, s, t) = replica();
        // A retry of request 10 (answered at offset 0) proposed at the head, then one after it.
        let batch = parts(
            &replica,
            &mut BTreeMap::new(),
            &[(10, s, "a"), (11, s, "b"), (12, t, "x")],
        );
        let certain = decide(&replica, &batch);
        assert_eq!(certain, [false, false, true]);
        let answers = apply_checked(&mut replica, batch, &certain);
        // The retry gets its first answer, the next is stale: neither is what the parts say.
        assert!(matches!(
            answers[0],
            Response::Appended {
                first_offset: 0,
                ..
            }
        ));
        assert!(matches!(answers[1], Response::Rejected(_)));
    }

    #[test]
    fn empty_and_sealed_looking_appends_are_not_certain() {
        assert!(!certain(false, &[], Basis::Applied));
        let forged = Bytes::from_static(b"\0KBSEAL\x01forged");
        assert!(!certain(
            false,
            std::slice::from_ref(&forged),
            Basis::Applied
        ));
        let (mut replica, s, _) = replica();
        let mut batch = parts(&replica, &mut BTreeMap::new(), &[(11, s, "b")]);
        if let Some(Command::Append { events, .. }) = batch.first_mut() {
            *events = vec![forged];
        }
        // The store refuses it: every replica answers `Invalid` and appends nothing.
        let Ok(Response::Batch(answers)) = replica.apply(4, &Command::Batch(batch)) else {
            panic!("a batch's answers")
        };
        assert!(matches!(
            answers.as_slice(),
            [Response::Rejected(Rejection::Invalid { .. })]
        ));
        assert_eq!(head(&replica, s).next_offset, 1);
        assert!(!certain(true, &[Bytes::from_static(b"e")], Basis::Applied));
        assert!(certain(
            false,
            &[Bytes::from_static(b"e")],
            Basis::CertainPart
        ));
    }
}
