//! [`Proposer`]: the leader's side of appends. Appends that arrive while an entry is in
//! flight wait and go together in the next one (a [`Command::Batch`]), each against the head
//! the appends before it in the batch leave (docs/REPLICATION.md, section "Many writes in
//! flight").

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite::{ExpectedOffset, StreamId};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{CommittedLeaderId, LogId};
use tokio::sync::{mpsc, oneshot};

use crate::certain::{certain, Basis};
use crate::command::{Command, Head, Rejection, RequestId, Response};
use crate::commit_watch::CommitWatch;
use crate::state_machine::StateMachine;
use crate::types::{NodeId, Raft};
use crate::write::{Appended, WriteError};

/// How many times one append is proposed again after its head was stale (entries of an
/// earlier leader applied in between, or an append before it in its batch did not apply).
pub(crate) const STALE_PROPOSALS_MAX: u32 = 8;
/// How long the leader waits to have applied its whole log before it reads heads.
const CATCH_UP_TIMEOUT_MS: u64 = 5_000;
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
    /// The index of the last entry applied to the state the parts were built on.
    read_at: u64,
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
            let (next, answered) = self.round(waiting).await;
            waiting = next;
            let linger = started.elapsed() / LINGER_DIVISOR;
            gather_returning(&mut queue, &mut waiting, answered, linger).await;
        }
    }

    /// Proposes what is waiting as one entry and answers it; returns what waits for the
    /// next entry (stale proposals first, in their order) and how many appends of the entry
    /// were answered.
    async fn round(&self, waiting: Vec<Pending>) -> (Vec<Pending>, usize) {
        // The term the heads are read in: an entry of this node in it follows them directly.
        let ready = match leading_term(&self.raft, self.id) {
            Ok(term) => catch_up(&self.raft).await.map(|()| term),
            Err(error) => Err(error),
        };
        let term = match ready {
            Ok(term) => term,
            Err(error) => {
                answer_all(waiting, &error);
                return (Vec::new(), 0);
            }
        };
        let Built {
            mut parts,
            later,
            conflicts,
            read_at,
        } = self.build(waiting);
        let mut next = Vec::new();
        let proposed = parts.len();
        if let Some(first) = parts.first() {
            let leader = CommittedLeaderId::new(term, self.id);
            let registration = parts.iter().any(|part| part.certain).then(|| {
                self.commits
                    .register(first.pending.request, leader, read_at)
            });
            let commands = parts.iter().map(|part| part.command.clone()).collect();
            let proposal = propose(&self.raft, self.id, Command::Batch(commands), self.bound);
            let outcome = match registration {
                None => proposal.await,
                Some(mut registration) => {
                    tokio::pin!(proposal);
                    tokio::select! {
                        biased;
                        outcome = &mut proposal => outcome,
                        log_id = registration.committed() => {
                            drop(registration);
                            parts
                                .iter_mut()
                                .filter(|part| part.certain)
                                .for_each(|part| part.answer_early(log_id));
                            proposal.await
                        }
                    }
                }
            };
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
        }
        let answered = proposed - next.len();
        next.extend(self.refuse(conflicts).await);
        next.extend(later);
        (next, answered)
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
    /// what does not fit in one entry.
    fn build(&self, waiting: Vec<Pending>) -> Built {
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
        let read_at = applied.map_or(0, |log_id| log_id.index);
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
                None => match heads.get(&pending.stream) {
                    Some(Ok(head)) => (Head::of(*head), Basis::Applied),
                    Some(Err(kimberlite::Error::UnknownStream { .. })) | None => {
                        let stream = pending.stream;
                        pending.answer(&Err(Rejection::UnknownStream { stream }.into()));
                        continue;
                    }
                    Some(Err(error)) => {
                        pending.answer(&Err(WriteError::Raft(error.to_string())));
                        continue;
                    }
                },
            };
            if !allows(pending.expected, prev.next_offset) {
                if basis != Basis::Applied {
                    later.push(pending);
                } else {
                    conflicts.push(pending);
                }
                continue;
            }
            let expected = prev.after(&pending.events);
            let certain = certain(answered.contains(&pending.request), &pending.events, basis);
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
            read_at,
        }
    }
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

/// Refuses at once on a node that knows it does not lead, instead of waiting to catch up.
pub(crate) fn check_leading(raft: &Raft, id: NodeId) -> Result<(), WriteError> {
    leading_term(raft, id).map(|_| ())
}

/// The term node `id` leads in, as far as it knows, or [`WriteError::NotLeader`].
fn leading_term(raft: &Raft, id: NodeId) -> Result<u64, WriteError> {
    let metrics = raft.metrics();
    let now = metrics.borrow();
    if now.current_leader == Some(id) {
        return Ok(now.current_term);
    }
    Err(WriteError::NotLeader {
        leader: now.current_leader,
    })
}

/// Waits until this node has applied every entry in its log, so the heads it reads are
/// those the next entry will meet.
pub(crate) async fn catch_up(raft: &Raft) -> Result<(), WriteError> {
    let last_log_index = raft.metrics().borrow().last_log_index.unwrap_or(0);
    raft.wait(Some(Duration::from_millis(CATCH_UP_TIMEOUT_MS)))
        .applied_index_at_least(Some(last_log_index), "leader catches up")
        .await
        .map(|_| ())
        .map_err(|error| WriteError::Raft(error.to_string()))
}

/// Proposes `command` on leader `id` and waits until this node has applied it, for at most
/// `bound` and only while `id` leads in the term it proposed in; after either, the outcome is
/// unknown (the entry may still commit: a retry with the same request id finds out). openraft
/// never answers some proposals of a deposed leader: one whose entry a snapshot from the
/// next leader then covers is neither applied nor truncated on this node (docs/REPLICATION.md,
/// section "Many writes in flight"), and a leader cut off from the majority waits forever.
pub(crate) async fn propose(
    raft: &Raft,
    id: NodeId,
    command: Command,
    bound: Duration,
) -> Result<(Response, LogId<NodeId>), WriteError> {
    let term = raft.metrics().borrow().current_term;
    let unknown = tokio::select! {
        // An answer that is there wins over a step down seen at the same time.
        biased;
        written = raft.client_write(command) => return match written {
            Ok(written) => Ok((written.data, written.log_id)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(WriteError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(error) => Err(WriteError::Raft(error.to_string())),
        },
        () = deposed(raft, id, term) => {
            format!("node {id} stopped leading term {term} while the entry was in flight")
        }
        () = tokio::time::sleep(bound) => format!(
            "the entry of node {id}, leader of term {term}, was not committed within {} ms",
            bound.as_millis()
        ),
    };
    tracing::warn!("{unknown}: answered as outcome unknown");
    Err(WriteError::Raft(format!(
        "{unknown}: its outcome is unknown"
    )))
}

/// Completes once node `id` no longer leads in `term` (or its Raft stopped).
async fn deposed(raft: &Raft, id: NodeId, term: u64) {
    let mut metrics = raft.metrics();
    loop {
        {
            let now = metrics.borrow_and_update();
            if now.current_term != term || now.current_leader != Some(id) {
                return;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn allows(expected: ExpectedOffset, next_offset: u64) -> bool {
    match expected {
        ExpectedOffset::Any => true,
        ExpectedOffset::NoStream => next_offset == 0,
        ExpectedOffset::Exact(offset) => offset.as_u64() == next_offset,
    }
}
