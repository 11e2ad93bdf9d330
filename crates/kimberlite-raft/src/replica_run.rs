//! Runs of a batch's appends written in one store call: consecutive appends to one stream,
//! each proposed against the head the one before leaves, go to the store as one write of
//! several batches (`Kimberlite::append_batches`), each still all-or-nothing across a crash
//! on its own. An entry of 30 single events from 30 clients costs each replica one write, not
//! 30 (docs/REPLICATION.md, section "Many writes in flight"). Each append's head is computed
//! and checked against the leader's before anything is written, so a replica still never
//! writes past a difference: the run ends before an append whose head differs, and that one
//! is applied alone, as any append.

use std::collections::BTreeMap;

use kimberlite::{Error, ExpectedOffset, StreamId};

use crate::command::{Command, Head, Response};
use crate::replica::{ApplyError, Divergence, DivergencePoint, LedgerChange, Replica};

impl Replica {
    /// Applies the run of appends at the start of `commands` (of the batch of log entry
    /// `index`) if there is one of at least two that would all apply now, pushing their
    /// answers and noting in `left` the head they leave; returns how many it applied (0: the
    /// first command is applied alone, as `Replica::apply_batch` does).
    pub(crate) fn apply_run(
        &mut self,
        index: u64,
        commands: &[Command],
        left: &mut BTreeMap<u64, Option<Head>>,
        answers: &mut Vec<Response>,
    ) -> Result<usize, ApplyError> {
        let Some(Command::Append { stream, prev, .. }) = commands.first() else {
            return Ok(0);
        };
        let (stream, prev) = (*stream, *prev);
        // The first append applies now only on the head the batch left on its stream so far
        // (or, first on it, on the store's).
        match left.get(&stream) {
            None => match self.store().head(StreamId::new(stream)) {
                Ok(head) if Head::of(head) == prev => {}
                _ => return Ok(0),
            },
            Some(Some(head)) if *head == prev => {}
            Some(_) => return Ok(0),
        }
        let (len, head) = self.run_length(stream, prev, commands);
        if len < 2 {
            return Ok(0);
        }
        let run = commands.get(..len).unwrap_or_default();
        let batches = run
            .iter()
            .filter_map(|command| match command {
                Command::Append { events, .. } => Some(events.clone()),
                _ => None,
            })
            .collect();
        let offset = ExpectedOffset::Exact(prev.next_offset.into());
        let appended = match self
            .store()
            .append_batches(StreamId::new(stream), batches, offset)
        {
            Ok(appended) => appended,
            // Refused with nothing written: each is applied alone, for its own answer.
            Err(Error::Sealed(_)) => return Ok(0),
            Err(source) => return Err(ApplyError::Store { index, source }),
        };
        let computed = Head {
            next_offset: appended.next_offset.as_u64(),
            hash: Some(*appended.head.as_bytes()),
        };
        if computed != head {
            return Err(Divergence {
                index,
                stream,
                point: DivergencePoint::After,
                expected: head,
                computed,
            }
            .into());
        }
        self.change(LedgerChange::ChangedAt { stream, index });
        let mut first_offset = prev.next_offset;
        for command in run {
            let Command::Append {
                request,
                expected,
                events,
                ..
            } = command
            else {
                continue;
            };
            let answer = Response::Appended {
                first_offset,
                head: *expected,
            };
            first_offset += events.len() as u64;
            self.remember(*request, index, &answer);
            answers.push(answer);
        }
        left.insert(stream, Some(head));
        Ok(len)
    }

    /// How many appends at the start of `commands` form a run on `stream` from `prev`, and
    /// the head after them: each not answered before (nor earlier in the run), not empty,
    /// proposed against the head the one before leaves, and leaving the head the leader
    /// expects. Heads are computed only once the run is known to be of two or more.
    fn run_length(&self, stream: u64, prev: Head, commands: &[Command]) -> (usize, Head) {
        let mut chained = Vec::new();
        let mut head = prev;
        for command in commands {
            let Command::Append {
                request,
                stream: to,
                prev,
                expected,
                events,
                ..
            } = command
            else {
                break;
            };
            let answered = chained.iter().any(|(seen, _, _)| seen == request)
                || self.ledger().requests.get(*request).is_some();
            if *to != stream || *prev != head || events.is_empty() || answered {
                break;
            }
            head = *expected;
            chained.push((*request, events, *expected));
        }
        if chained.len() < 2 {
            return (0, prev);
        }
        let mut head = prev;
        let mut len = 0;
        for (_, events, expected) in chained {
            let after = head.after(events);
            if after != expected {
                break;
            }
            head = after;
            len += 1;
        }
        (len, head)
    }
}
