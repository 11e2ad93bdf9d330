//! [`Proposer`]: the leader's side of appends. Appends that arrive while an entry is in
//! flight wait and go together in the next one (a [`Command::Batch`]), each against the head
//! the appends before it in the batch leave (docs/REPLICATION.md, section "Many writes in
//! flight").

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite::{ExpectedOffset, StreamId};
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::{CommittedLeaderId, LogId};
use tokio::sync::{mpsc, oneshot};

use crate::certain::{certain, Basis};
use crate::command::{Command, Head, Rejection, RequestId, Response};
use crate::commit_watch::CommitWatch;
use crate::projection::{footing, Footing, Projection};
use crate::proposal::{applied_at_least, leading_term, propose};
use crate::state_machine::StateMachine;
use crate::types::{NodeId, Raft};
use crate::write::{Appended, WriteError};

/// How many times one append is proposed again after its head was stale (entries of an
/// earlier leader applied in between, or an append before it in its batch did not apply).
pub(crate) const STALE_PROPOSALS_MAX: u32 = 8;
/// The event bytes one entry carries at most (more wait for the next entry), so that one
/// entry stays a small part of a log record and of a message; a larger lone append goes
/// alone.
const ENTRY_EVENT_BYTES_MAX: usize = 4 * 1024 * 1024;
/// After an entry, the proposer waits at most its time over this for the appends it answered
/// to come back ([`gather_returning`]).
const LINGER_DIVISOR: u32 = 2;

type Answer = oneshot::Sender<Result<Appended, WriteError>>;

/// An append waiting for its entry, with whoever waits for its answer (a request sent again
/// while the first was waiting gets the same answer).
struct Pending {
    request: RequestId,
    stream: u64,
    events: Vec<Bytes>,
    expected: ExpectedOffset,
    stale_proposals: u32,
    answers: Vec<Answer>,
}

impl Pending {
    fn answer(self, result: &Result<Appended, WriteError>) {
        for answer in self.answers {
            // A caller that stopped waiting: nothing to tell it.
            let _ = answer.send(result.clone());
        }
    }

    fn bytes(&self) -> usize {
        self.events.iter().map(Bytes::len).sum()
    }
}

/// The queue of appends and the task that proposes them, one entry at a time.
#[derive(Debug)]
pub(crate) struct Proposer {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Proposer {
    /// Starts the proposing task of node `id`; it ends when the proposer is dropped.
    /// Each entry is waited for at most `bound` ([`propose`]).
    pub(crate) fn start(
        id: NodeId,
        raft: Raft,
        state_machine: StateMachine,
        commits: CommitWatch,
        bound: Duration,
    ) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        let task = Task {
            id,
            raft,
            state_machine,
            commits,
            bound,
        };
        tokio::spawn(task.run(waiting));
        Self { queue }
    }

    /// Appends `events` to `stream` if its next offset meets `expected`; see
    /// [`crate::Node::append`].
    pub(crate) async fn append(
        &self,
        request: RequestId,
        stream: u64,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
    ) -> Result<Appended, WriteError> {
        let stopped = || WriteError::Raft("the proposer stopped".into());
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            request,
            stream,
            events,
            expected,
            stale_proposals: 0,
            answers: vec![answer],
        };
        self.queue.send(pending).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// What [`Task::build`] made of the waiting appends.
struct Built {
    /// The next entry's appends.
    parts: Vec<Part>,
    /// Those for a later entry.
    later: Vec<Pending>,
    /// Those whose expected offset does not meet the applied head.
    conflicts: Vec<Pending>,
    /// The index of the last entry applied to the state the parts were built on, or of the
    /// entry whose heads they were built on.
    follows: u64,
    /// That entry's index, if a part was built on its heads (`crate::projection`).
    through: Option<u64>,
}

/// An append in the batch being built, and its command.
struct Part {
    pending: Pending,
    command: Command,
    /// Whether applying it is certain to answer `Appended` with its command's heads
    /// ([`crate::certain`]): it is answered once its entry is committed.
    certain: bool,
    /// What it was answered then.
    early: Option<Appended>,
}

impl Part {
    /// Answers a certain part: its entry `log_id` is committed.
    fn answer_early(&mut self, log_id: LogId<NodeId>) {
        let Command::Append { prev, expected, .. } = &self.command else {
            return;
        };
        let appended = Appended {
            first_offset: prev.next_offset,
            head: *expected,
            log_id,
        };
        for answer in self.pending.answers.drain(..) {
            // A caller that stopped waiting: nothing to tell it.
            let _ = answer.send(Ok(appended));
        }
        self.early = Some(appended);
    }
}

struct Task {
    id: NodeId,
    raft: Raft,
    state_machine: StateMachine,
    /// Tells when an entry is committed, before it is applied.
    commits: CommitWatch,
    /// How long an entry, or a leadership check, is waited for.
    bound: Duration,
}

impl Task {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Pending>) {
        let mut waiting: Vec<Pending> = Vec::new();
        let mut last: Option<Projection> = None;
        loop {
            if waiting.is_empty() {
                match queue.recv().await {
                    Some(pending) => waiting.push(pending),
                    None => return,
                }
            }
            while let Ok(pending) = queue.try_recv() {
                waiting.push(pending);
            }
            let started = Instant::now();
            let (next, answered, projection) = self.round(waiting, last.take()).await;
            waiting = next;
            last = projection;
            let linger = started.elapsed() / LINGER_DIVISOR;
            gather_returning(&mut queue, &mut waiting, answered, linger).await;
        }
    }

    /// Proposes what is waiting as one entry and answers it; returns what waits for the
    /// next entry (stale proposals first, in their order), how many appends of the entry
    /// were answered, and the entry's projection if every part of it was answered at commit
    /// (the next entry is built on it: `crate::projection`). `last`: the last entry's.
    async fn round(
        &self,
        waiting: Vec<Pending>,
        last: Option<Projection>,
    ) -> (Vec<Pending>, usize, Option<Projection>) {
        // The term the heads are read in: an entry of this node in it follows them directly.
        let ready = match leading_term(&self.raft, self.id) {
            Ok(term) => self.ready(last).await.map(|last| (term, last)),
            Err(error) => Err(error),
        };
        let (term, last) = match ready {
            Ok(ready) => ready,
            Err(error) => {
                answer_all(waiting, &error);
                return (Vec::new(), 0, None);
            }
        };
        let built = self.build(waiting, last.as_ref());
        let proposed = built.parts.len();
        let (mut next, projection) = if proposed == 0 {
            (Vec::new(), last)
        } else {
            self.propose_parts(built.parts, term, built.follows, built.through)
                .await
        };
        let answered = proposed - next.len();
        next.extend(self.refuse(built.conflicts).await);
        next.extend(built.later);
        (next, answered, projection)
    }

    /// Waits until the state the next entry is built on is applied (`crate::projection`);
    /// returns `last` if the entry may be built on it.
    async fn ready(&self, last: Option<Projection>) -> Result<Option<Projection>, WriteError> {
        let last_log_index = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
        match footing(last.as_ref(), last_log_index) {
            Footing::CatchUp(index) => applied_at_least(&self.raft, index).await.map(|()| None),
            Footing::Projected(index) => applied_at_least(&self.raft, index).await.map(|()| last),
        }
    }

    /// Proposes `parts` as one entry in `term` and answers them: the certain ones once it is
    /// committed, the others with what applying it answered. Returns those to propose again,
    /// and the entry's projection if all were answered at commit: then the leader's apply of
    /// the entry is awaited in the background, and only checked against those answers.
    async fn propose_parts(
        &self,
        mut parts: Vec<Part>,
        term: u64,
        follows: u64,
        through: Option<u64>,
    ) -> (Vec<Pending>, Option<Projection>) {
        let Some(first) = parts.first() else {
            return (Vec::new(), None);
        };
        let leader = CommittedLeaderId::new(term, self.id);
        let registration = parts.iter().any(|part| part.certain).then(|| {
            self.commits
                .register(first.pending.request, leader, follows)
        });
        let commands = parts.iter().map(|part| part.command.clone()).collect();
        let command = match through {
            Some(through) => Command::Projected { through, commands },
            None => Command::Batch(commands),
        };
        let (raft, id, bound) = (self.raft.clone(), self.id, self.bound);
        let mut proposal = Box::pin(async move { propose(&raft, id, command, bound).await });
        let outcome = match registration {
            None => proposal.await,
            Some(mut registration) => {
                tokio::select! {
                    biased;
                    outcome = &mut proposal => outcome,
                    log_id = registration.committed() => {
                        drop(registration);
                        parts
                            .iter_mut()
                            .filter(|part| part.certain)
                            .for_each(|part| part.answer_early(log_id));
                        if parts.iter().all(|part| part.certain) {
                            let projection = project(&parts, log_id.index);
                            tokio::spawn(async move {
                                // Every part was answered: nothing to propose again.
                                drop(finish(parts, proposal.await));
                            });
                            return (Vec::new(), Some(projection));
                        }
                        proposal.await
                    }
                }
            }
        };
        (finish(parts, outcome), None)
    }

    /// Answers `OffsetConflict` to the appends whose expected offset did not meet the applied
    /// head, once a majority has confirmed this node still leads and it has applied what was
    /// committed before (a deposed leader's head may be stale); returns those that meet the
    /// head now, for the next entry.
    async fn refuse(&self, conflicts: Vec<Pending>) -> Vec<Pending> {
        if conflicts.is_empty() {
            return conflicts;
        }
        // Bounded: the next entries wait for this task.
        match tokio::time::timeout(self.bound, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)))) => {
                let leader = forward.leader_id;
                answer_all(conflicts, &WriteError::NotLeader { leader });
                return Vec::new();
            }
            Ok(Err(error)) => {
                answer_all(conflicts, &WriteError::Raft(error.to_string()));
                return Vec::new();
            }
            Err(_) => {
                let reason = format!(
                    "leadership not confirmed within {} ms",
                    self.bound.as_millis()
                );
                answer_all(conflicts, &WriteError::Raft(reason));
                return Vec::new();
            }
        }
        let mut again = Vec::new();
        for pending in conflicts {
            let (head, _) = self
                .state_machine
                .read(|store| store.head(StreamId::new(pending.stream)));
            match head {
                Ok(head) if allows(pending.expected, head.next_offset.as_u64()) => {
                    again.push(pending);
                }
                Ok(head) => {
                    let rejection = Rejection::OffsetConflict {
                        stream: pending.stream,
                        next_offset: head.next_offset.as_u64(),
                    };
                    pending.answer(&Err(rejection.into()));
                }
                Err(error) => pending.answer(&Err(WriteError::Raft(error.to_string()))),
            }
        }
        again
    }

    /// Builds the next entry's appends from `waiting`, in order, each proposed against the
    /// head the ones before it on its stream leave. Sets aside an append whose expected
    /// offset does not meet the applied head (a conflict, confirmed before it is answered),
    /// or does not meet the head the batch projects (checked against the applied head in the
    /// next entry, so a conflict is never answered against a write that may still fail), and
    /// what does not fit in one entry. On `last`'s heads if the state read is the one just
    /// before it (`crate::projection`).
    fn build(&self, waiting: Vec<Pending>, last: Option<&Projection>) -> Built {
        let streams: BTreeSet<u64> = waiting.iter().map(|pending| pending.stream).collect();
        let ((heads, answered), applied) = self.state_machine.read_replica(|replica| {
            let heads = streams
                .iter()
                .map(|&stream| (stream, replica.store().head(StreamId::new(stream))))
                .collect::<BTreeMap<_, _>>();
            let requests = &replica.ledger().requests;
            let answered = waiting
                .iter()
                .map(|pending| pending.request)
                .filter(|&request| requests.get(request).is_some())
                .collect::<BTreeSet<_>>();
            (heads, answered)
        });
        let applied = applied.map_or(0, |log_id| log_id.index);
        let over = last.filter(|last| last.over(applied));
        let follows = over.map_or(applied, |last| last.index);
        let mut through = None;
        // Not in the ledger until `last` is applied.
        let answered = |request: &RequestId| {
            answered.contains(request) || over.is_some_and(|last| last.requests.contains(request))
        };
        // Each stream's head after the batch's appends to it so far, and whether all of them
        // are certain.
        let mut projected: BTreeMap<u64, (Head, bool)> = BTreeMap::new();
        let mut parts: Vec<Part> = Vec::new();
        let mut part_of: BTreeMap<RequestId, usize> = BTreeMap::new();
        let mut later = Vec::new();
        let mut conflicts = Vec::new();
        let mut bytes = 0;
        for pending in waiting {
            if let Some(part) = part_of
                .get(&pending.request)
                .and_then(|&index| parts.get_mut(index))
            {
                part.pending.answers.extend(pending.answers);
                continue;
            }
            if !parts.is_empty() && bytes + pending.bytes() > ENTRY_EVENT_BYTES_MAX {
                later.push(pending);
                continue;
            }
            let (prev, basis) = match projected.get(&pending.stream) {
                Some(&(head, true)) => (head, Basis::CertainPart),
                Some(&(head, false)) => (head, Basis::UncertainPart),
                None => match (
                    over.and_then(|last| last.heads.get(&pending.stream)),
                    heads.get(&pending.stream),
                ) {
                    (Some(&head), _) => {
                        through = over.map(|last| last.index);
                        (head, Basis::Projected)
                    }
                    (None, Some(Ok(head))) => (Head::of(*head), Basis::Applied),
                    (None, Some(Err(kimberlite::Error::UnknownStream { .. })) | None) => {
                        let stream = pending.stream;
                        pending.answer(&Err(Rejection::UnknownStream { stream }.into()));
                        continue;
                    }
                    (None, Some(Err(error))) => {
                        pending.answer(&Err(WriteError::Raft(error.to_string())));
                        continue;
                    }
                },
            };
            if !allows(pending.expected, prev.next_offset) {
                // A projected head is exact: confirmed on the applied head as an applied one.
                if matches!(basis, Basis::Applied | Basis::Projected) {
                    conflicts.push(pending);
                } else {
                    later.push(pending);
                }
                continue;
            }
            // The heads of `last`'s streams are those after it; the others', after `applied`.
            let read_at = match over {
                Some(last) if last.heads.contains_key(&pending.stream) => last.index,
                _ => applied,
            };
            let expected = prev.after(&pending.events);
            let certain = certain(answered(&pending.request), &pending.events, basis);
            projected.insert(pending.stream, (expected, certain));
            bytes += pending.bytes();
            let command = Command::Append {
                request: pending.request,
                stream: pending.stream,
                prev,
                read_at,
                expected,
                events: pending.events.clone(),
            };
            part_of.insert(pending.request, parts.len());
            parts.push(Part {
                pending,
                command,
                certain,
                early: None,
            });
        }
        Built {
            parts,
            later,
            conflicts,
            follows,
            through,
        }
    }
}

/// The heads and request ids of an entry of `parts` at log index `index`.
fn project(parts: &[Part], index: u64) -> Projection {
    let mut projection = Projection {
        index,
        ..Projection::default()
    };
    for part in parts {
        if let Command::Append {
            request,
            stream,
            expected,
            ..
        } = &part.command
        {
            projection.heads.insert(*stream, *expected);
            projection.requests.insert(*request);
        }
    }
    projection
}

/// Answers `parts` with the `outcome` of their entry; returns those to propose again.
fn finish(
    parts: Vec<Part>,
    outcome: Result<(Response, LogId<NodeId>), WriteError>,
) -> Vec<Pending> {
    let mut next = Vec::new();
    match outcome {
        Ok((Response::Batch(answers), log_id)) if answers.len() == parts.len() => {
            for (part, answer) in parts.into_iter().zip(answers) {
                next.extend(settle(part, answer, log_id));
            }
        }
        Ok((other, _)) => {
            answer_all(
                parts.into_iter().map(|part| part.pending),
                &WriteError::Raft(format!("unexpected answer {other:?}")),
            );
        }
        Err(error) => answer_all(parts.into_iter().map(|part| part.pending), &error),
    }
    next
}

/// Waits, at most `linger`, until as many more appends are waiting as the last entry
/// answered (or a full entry's worth of events): clients with one request in flight send
/// their next one as soon as they are answered, and without the wait the first of them would
/// leave alone in the next entry while the rest wait a whole entry more, splitting the clients
/// into groups that take turns (docs/REPLICATION.md, section "Many writes in flight").
async fn gather_returning(
    queue: &mut mpsc::UnboundedReceiver<Pending>,
    waiting: &mut Vec<Pending>,
    answered: usize,
    linger: Duration,
) {
    if answered == 0 {
        return;
    }
    while let Ok(pending) = queue.try_recv() {
        waiting.push(pending);
    }
    let target = waiting.len() + answered;
    let deadline = tokio::time::Instant::now() + linger;
    let mut bytes: usize = waiting.iter().map(Pending::bytes).sum();
    while waiting.len() < target && bytes < ENTRY_EVENT_BYTES_MAX {
        match tokio::time::timeout_at(deadline, queue.recv()).await {
            Ok(Some(pending)) => {
                bytes += pending.bytes();
                waiting.push(pending);
            }
            // The proposer was dropped, or the wait is over.
            Ok(None) | Err(_) => return,
        }
    }
}

/// Answers `part` with what applying its append answered; returns it if it must be
/// proposed again (its head was stale).
fn settle(part: Part, answer: Response, log_id: LogId<NodeId>) -> Option<Pending> {
    let Part {
        mut pending, early, ..
    } = part;
    if let Some(early) = early {
        let same = matches!(answer, Response::Appended { first_offset, head }
            if first_offset == early.first_offset && head == early.head && log_id == early.log_id);
        if !same {
            // Not reached (`crate::certain`); said loudly if it is.
            tracing::error!(
                "request {}: answered {early:?} at commit, but applying it answered {answer:?}",
                pending.request
            );
        }
    }
    let result = match answer {
        Response::Appended { first_offset, head } => Ok(Appended {
            first_offset,
            head,
            log_id,
        }),
        Response::Rejected(Rejection::StaleHead { stream, .. }) => {
            pending.stale_proposals += 1;
            if pending.stale_proposals < STALE_PROPOSALS_MAX {
                return Some(pending);
            }
            Err(WriteError::Raft(format!(
                "stream {stream}: head stale after {STALE_PROPOSALS_MAX} proposals"
            )))
        }
        Response::Rejected(rejection) => Err(rejection.into()),
        other => Err(WriteError::Raft(format!("unexpected answer {other:?}"))),
    };
    pending.answer(&result);
    None
}

fn answer_all(pendings: impl IntoIterator<Item = Pending>, error: &WriteError) {
    let result = Err(error.clone());
    pendings
        .into_iter()
        .for_each(|pending| pending.answer(&result));
}

fn allows(expected: ExpectedOffset, next_offset: u64) -> bool {
    match expected {
        ExpectedOffset::Any => true,
        ExpectedOffset::NoStream => next_offset == 0,
        ExpectedOffset::Exact(offset) => offset.as_u64() == next_offset,
    }
}
